"""`dicom-export verify`: prove an export arrived intact, file by file, against its manifest.

The manifest `<id>/manifest-sha256.txt` lists `<sha256 hex>  results/<study>/<series>/<sop>.dcm` for
every exported file. Verification reads it, lists `<id>/results/`, downloads and hashes every listed
file, and names each problem:
- missing: listed in the manifest, not in the destination;
- extra: a `.dcm` under results/ that the manifest does not list;
- mismatched: its SHA-256 is not the manifest's, or its Content-MD5 is absent or not its content's;
- manifest: a line that is not in the manifest's format, or a file listed twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from rich.console import Console
from rich.table import Table

from .destination import blob_lines
from .progress import plural, transfer_progress

if TYPE_CHECKING:
    from azure.storage.blob import BlobProperties, ContainerClient

MANIFEST = "manifest-sha256.txt"
_LINE = re.compile(rb"([0-9a-fA-F]{64}) [ *](results/\S+)")  # sha256sum's text (' ') or binary ('*') mode
KINDS = ("missing", "extra", "mismatched", "manifest")


@dataclass(frozen=True)
class Problem:
    kind: str  # one of KINDS
    path: str  # relative to `<id>/`, as the manifest lists it
    detail: str


@dataclass
class Report:
    operation_id: str
    manifest_href: str
    listed: int = 0  # files the manifest lists
    intact: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        return {"operationId": self.operation_id, "manifestHref": self.manifest_href, "listed": self.listed,
                "intact": self.intact, "problems": [asdict(p) for p in self.problems]}


def read_manifest(client: ContainerClient, operation_id: str, report: Report) -> dict[str, str]:
    """path → sha256 hex of every well-formed line; malformed lines and repeats become problems."""
    expected: dict[str, str] = {}
    for number, line in enumerate(blob_lines(client, f"{operation_id}/{MANIFEST}"), start=1):
        match = _LINE.fullmatch(line.rstrip(b"\r"))
        if not match:
            report.problems.append(Problem("manifest", MANIFEST, f"line {number} is not '<sha256>  results/...'"))
            continue
        digest, path = match.group(1).decode().lower(), match.group(2).decode()
        if path in expected:
            report.problems.append(Problem("manifest", path, f"listed again on line {number}"))
        expected[path] = digest
    return expected


def verify(client: ContainerClient, operation_id: str, manifest_href: str, console: Console,
           workers: int = 8) -> Report:
    """Check every file of the export against the manifest; the progress bar goes to `console`."""
    report = Report(operation_id, manifest_href)
    expected = read_manifest(client, operation_id, report)
    report.listed = len(expected)
    prefix = f"{operation_id}/"
    found = {b.name.removeprefix(prefix): b for b in client.list_blobs(name_starts_with=f"{prefix}results/")}
    report.problems += [Problem("missing", path, "listed in the manifest, not in the destination")
                        for path in sorted(expected.keys() - found.keys())]
    report.problems += [Problem("extra", path, "not listed in the manifest")
                        for path in sorted(found.keys() - expected.keys()) if path.endswith(".dcm")]
    to_check = sorted(expected.keys() & found.keys())
    with transfer_progress("verifying", console) as progress, ThreadPoolExecutor(workers) as pool:
        task = progress.add_task("verifying", total=sum(found[p].size for p in to_check),
                                 files=f"0/{len(to_check)}")
        futures = [pool.submit(check, client, found[path], expected[path],
                               lambda n: progress.advance(task, n)) for path in to_check]
        for done, future in enumerate(as_completed(futures), start=1):
            problem = future.result()
            if problem:
                report.problems.append(problem)
            else:
                report.intact += 1
            progress.update(task, files=f"{done}/{len(to_check)}")
    report.problems.sort(key=lambda p: (KINDS.index(p.kind), p.path))
    return report


def check(client: ContainerClient, blob: BlobProperties, sha256_hex: str,
          advance: Callable[[int], None]) -> Problem | None:
    """Hash one blob as it downloads (pinned to the version listed); the problem with it, if any."""
    path = blob.name.split("/", 1)[1]
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    download = client.get_blob_client(blob.name).download_blob
    try:
        for chunk in download(etag=blob.etag, match_condition=MatchConditions.IfNotModified).chunks():
            sha256.update(chunk)
            md5.update(chunk)
            advance(len(chunk))
    except ResourceNotFoundError:
        return Problem("missing", path, "deleted while being verified")
    except ResourceModifiedError:
        return Problem("mismatched", path, "replaced while being verified")
    if sha256.hexdigest() != sha256_hex:
        return Problem("mismatched", path, f"SHA-256 is {sha256.hexdigest()}, the manifest says {sha256_hex}")
    stored = blob.content_settings.content_md5
    if not stored:
        return Problem("mismatched", path, "the blob has no Content-MD5")
    if bytes(stored) != md5.digest():
        return Problem("mismatched", path, "its Content-MD5 does not match its content")
    return None


def problems_table(report: Report) -> Table:
    """One row per problem, titled with the counts."""
    table = Table(title=summary(report), title_justify="left")
    for column in ("problem", "file", "detail"):
        table.add_column(column, overflow="fold", no_wrap=column == "problem")
    for problem in report.problems:
        table.add_row(problem.kind, problem.path, problem.detail)
    return table


def summary(report: Report) -> str:
    """'1,000 files listed: 997 intact, 1 missing, 1 extra, 1 mismatched'."""
    counts = [f"{sum(p.kind == kind for p in report.problems):,} {kind}" for kind in KINDS[:3]]
    return f"{plural(report.listed, 'file')} listed: {report.intact:,} intact, " + ", ".join(counts)
