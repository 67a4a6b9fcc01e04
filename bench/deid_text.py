"""How well Clean Descriptors cleans free text: detection on a generated corpus, false removals on ordinary text.

    .venv/bin/python -m bench.deid_text [--samples 5000] [--seed 21]

The corpus (testkit/free_text.py) puts other people's names, IDs, dates, phone numbers and e-mail
addresses into ordinary descriptors the ways people write them. Prints and appends to
bench/RESULTS.md: per kind of identifier, the share caught (nothing of it left in the output: cleaned,
or the whole value removed); how many values were removed whole; and on ordinary descriptors with no
identifier, the share changed at all and the share removed whole (the false removals), for pydicom's
own description values, generated ones, and descriptors named after people (Baker cyst, Smith fracture).
"""

from __future__ import annotations

import argparse
import random
import time

from bench.report import add_results_argument, report, table
from shared.deid.descriptors import clean
from testkit.free_text import EPONYMOUS, KINDS, corpus, ordinary, pydicom_descriptors, score


def _changes(texts: list[str]) -> tuple[int, int]:
    """(values changed at all, values removed whole) among `texts`."""
    outputs = [clean(t) for t in texts]
    return sum(o != t for o, t in zip(outputs, texts, strict=True)), sum(o is None for o in outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=21)
    add_results_argument(parser)
    args = parser.parse_args()
    samples = corpus(args.samples, args.seed)
    clean("warm up")  # loads the name lists and the vocabulary once
    started = time.perf_counter()
    scored = score(samples, clean)
    per_value = (time.perf_counter() - started) / len(samples) * 1e6
    rows = [[kind, scored.total[kind], scored.caught[kind], f"{scored.rate(kind):.1%}"] for kind in KINDS]
    rows.append(["all", sum(scored.total.values()), sum(scored.caught.values()), f"{scored.rate():.1%}"])
    listed = [k for k in KINDS if k != "unlisted name"]
    caught_listed = sum(scored.caught[k] for k in listed) / sum(scored.total[k] for k in listed)
    rng = random.Random(args.seed)
    ordinary_sets = [("pydicom's test files' descriptions", pydicom_descriptors()),
                     ("generated ordinary descriptors", [ordinary(rng) for _ in range(args.samples)]),
                     ("descriptors named after people (eponyms)", list(EPONYMOUS))]
    false_rows = []
    for label, texts in ordinary_sets:
        changed, removed = _changes(texts)
        false_rows.append([label, len(texts), f"{changed / len(texts):.1%}", f"{removed / len(texts):.1%}"])
    body = "\n\n".join([
        table(["identifier kind", "identifiers", "caught", "detection rate"], rows),
        (f"All but unlisted names: {caught_listed:.1%} caught. Values removed whole (the confidence rule): "
         f"{scored.removed} of {scored.samples} ({scored.removed / scored.samples:.1%}). "
         f"Cleaning time: {per_value:.0f} µs per value."),
        table(["ordinary descriptors (no identifier)", "values", "changed", "removed whole"], false_rows),
    ])
    report("De-identification: Clean Descriptors on free text", body, notes=(
        f"{args.samples} generated samples (seed {args.seed}), each an ordinary descriptor with one or two "
        "identifiers; an identifier is caught when none of its words or numbers is left. Listed names come from "
        "Faker, the detector's own list: that figure measures the matching, not the list's coverage."),
        results=args.results)


if __name__ == "__main__":
    main()
