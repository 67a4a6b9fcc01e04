"""`dicom-export verify`: prove an export arrived intact, file by file, against its manifest.

The manifest `<id>/manifest-sha256.txt` lists `<sha256 hex>  results/<study>/<series>/<sop>.dcm` for
every exported file. The operation status records the manifest's SHA-256 and size when the service
commits it, outside the container. Verification reads the manifest and checks it against that record
first (a file rewritten together with its manifest line is caught there), then lists `<id>/results/`,
downloads and hashes every listed file, and names each problem:
- missing: listed in the manifest, not in the destination;
- extra: a `.dcm` under results/ that the manifest does not list;
- mismatched: its SHA-256 is not the manifest's, or its Content-MD5 is absent or not its content's;
- manifest: the manifest is not the one the service committed, a line is not in the manifest's format,
  or a file is listed twice.
A report prints one problem a line, `<kind>\t<path>\t<detail>`, whole, for grep and cut.
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
    status: str = ""  # the operation's status: a failed or canceled export lists what it wrote
    listed: int = 0  # files the manifest lists
    intact: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        return {"operationId": self.operation_id, "status": self.status, "manifestHref": self.manifest_href,
                "listed": self.listed,
                "intact": self.intact, "problems": [asdict(p) for p in self.problems]}


def read_manifest(client: ContainerClient, operation_id: str, report: Report,
                  recorded: tuple[str, int] | None = None) -> dict[str, str]:
    """path → sha256 hex of every well-formed line; malformed lines and repeats become problems, and so
    does a manifest whose SHA-256 and size are not those `recorded` in the operation status."""
    expected: dict[str, str] = {}
    digest, size = hashlib.sha256(), 0

    def seen(chunk: bytes) -> None:
        nonlocal size
        digest.update(chunk)
        size += len(chunk)

    for number, line in enumerate(blob_lines(client, f"{operation_id}/{MANIFEST}", seen), start=1):
        match = _LINE.fullmatch(line.rstrip(b"\r"))
        if not match:
            report.problems.append(Problem("manifest", MANIFEST, f"line {number} is not '<sha256>  results/...'"))
            continue
        path, line_digest = match.group(2).decode(), match.group(1).decode().lower()
        if path in expected:
            report.problems.append(Problem("manifest", path, f"listed again on line {number}"))
        expected[path] = line_digest
    if recorded and (digest.hexdigest(), size) != recorded:
        report.problems.insert(0, Problem(
            "manifest", MANIFEST, f"SHA-256 {digest.hexdigest()} ({size:,} bytes) is not the one the service "
            f"recorded when it committed it, {recorded[0]} ({recorded[1]:,} bytes): the manifest was rewritten"))
    return expected


def recorded_manifest(operation: dict) -> tuple[str, int] | None:
    """The manifest's SHA-256 and size as the operation status records them (None before they were recorded)."""
    results = operation.get("results") or {}
    sha256, size = results.get("manifestSha256"), results.get("manifestSize")
    return (str(sha256), int(size)) if sha256 and size is not None else None


def verify(client: ContainerClient, operation: dict, console: Console, workers: int = 8) -> Report:
    """Check every file of the export against the manifest; the progress bar goes to `console`.

    A manifest that is not the one recorded in the operation status is the only problem reported: nothing
    it says can be trusted.
    """
    operation_id = operation["operationId"]
    report = Report(operation_id, operation["results"]["manifestHref"], str(operation.get("status") or ""))
    expected = read_manifest(client, operation_id, report, recorded_manifest(operation))
    report.listed = len(expected)
    if report.problems and report.problems[0].detail.endswith("the manifest was rewritten"):
        del report.problems[1:]
        return report
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


def problem_lines(report: Report) -> list[str]:
    """One line per problem, whole and tab-separated: `mismatched<TAB>results/.../x.dcm<TAB>SHA-256 is ...`."""
    return [f"{p.kind}\t{p.path}\t{p.detail}" for p in report.problems]


def summary(report: Report) -> str:
    """'1,000 files listed: 997 intact, 1 missing, 1 extra, 1 mismatched', after the export's state unless completed."""
    counts = [f"{sum(p.kind == kind for p in report.problems):,} {kind}" for kind in KINDS[:3]]
    state = f"export {report.status}, " if report.status not in ("", "completed", "succeeded") else ""
    return f"{state}{plural(report.listed, 'file')} listed: {report.intact:,} intact, " + ", ".join(counts)
