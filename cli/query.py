"""The CLI's query flags and the `search` report.

`--query KEY=VALUE` adds one match (a DICOM keyword or tag, and a QIDO-RS value: `CT`, `2023*`,
`20230101-20231231`, `1.2.3,1.2.4`); the matches given together form one query. `--where` starts the next
query, so several queries are ORed:

    dicom-export export --query ModalitiesInStudy=CT --query StudyDate=20230101-20231231 \\
        --where --query PatientID=P-0042 --query Modality=MR ...
"""

from __future__ import annotations

import argparse
from typing import Any


def match(text: str) -> tuple[str, str]:
    """An argparse type: `KEY=VALUE` (the value may itself hold `=`)."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not of the form KEY=VALUE (e.g. Modality=CT)")
    return key.strip(), value


class AddMatch(argparse.Action):
    """`--query`: one more match in the current query."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, value: Any, option: str | None = None) -> None:
        queries = getattr(namespace, self.dest, None) or [{}]
        key, text = value
        if key in queries[-1]:
            parser.error(f"--query {key}= given twice in one query (start the next with --where)")
        queries[-1][key] = text
        setattr(namespace, self.dest, queries)


class NextQuery(argparse.Action):
    """`--where`: the `--query` flags after it form the next query."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, value: Any, option: str | None = None) -> None:
        queries = getattr(namespace, self.dest, None) or []
        if not queries or queries[-1]:
            queries.append({})
        setattr(namespace, self.dest, queries)


def add_query_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("query (QIDO-RS matching)")
    group.add_argument("--query", dest="queries", action=AddMatch, type=match, metavar="KEY=VALUE",
                       help="match an attribute (keyword or tag): exact, * ? wildcards, date ranges A-B, UID lists a,b "
                            "(repeatable: together one query)")
    group.add_argument("--where", dest="queries", action=NextQuery, nargs=0,
                       help="start the next query; an instance is taken when any query selects it")


def queries_of(args: argparse.Namespace) -> list[dict[str, str]]:
    return [q for q in getattr(args, "queries", None) or [] if q]


def search_lines(found: list[dict[str, Any]]) -> list[str]:
    """What each query selects, one study, series or instance a line (whole `study/series/sop` paths, for grep),
    with its instances, each query's totals and the export's."""
    lines = []
    for number, result in enumerate(found, 1):
        text = "&".join(f"{k}={v}" for k, v in result["query"].items())
        lines.append(f"query {number} ({result['level']} level): {text}")
        for match_ in result["matches"]:
            path = "/".join(match_[k] for k in ("study", "series", "instance") if k in match_)
            lines.append(f"  {path}  {_count(match_['instances'], 'instance')}")
        more = " or more" if result["more"] else ""
        dropped = f"; {result['dropped']} rows the store returned did not match and were left out" \
            if result["dropped"] else ""
        level = {"study": "studies", "series": "series", "instance": "instances"}[result["level"]]
        lines.append(f"  {len(result['matches'])}{more} {level}, {result['instances']}{more} instances"
                     f" not selected by an earlier query{dropped}")
    more = " or more" if any(r["more"] for r in found) else ""
    lines.append(f"an export by these queries takes {sum(r['instances'] for r in found)}{more} instances")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
