"""An export survives its host being SIGKILLed three times — during expansion, during the copy fan-out and
around continue-as-new — and still exports every file exactly once, byte-identical, inside its own prefix,
with a manifest that lists each file once with its SHA-256 and Content-MD5 on every file.

600 tiny instances in generations of 3 × 10 keep it quick; `bench/reliability.py` runs the 3 000-instance version.
"""

from __future__ import annotations

from hashlib import md5
from pathlib import Path

from testkit.crashes import killed_export
from testkit.exporting import error_log, manifest, manifest_of, results

INSTANCES = 600
# (where the kill lands, how many files must be exported before aiming for it)
KILLS = (("expansion", 100), ("copy", 250), ("continue-as-new", 400))


def test_an_export_killed_three_times_completes_with_every_file_exactly_once(
        tmp_path: Path, storage_connection_string: str) -> None:
    killed = killed_export(tmp_path, storage_connection_string, INSTANCES, 6, KILLS)
    operation, done, destination, stored = killed.operation, killed.done, killed.destination, killed.stored

    assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == ("completed", INSTANCES, 0), done
    assert results(destination, operation["id"]) == stored  # every file, byte for byte
    prefix = f"{operation['id']}/"
    assert {b.name for b in destination.list_blobs()} == (
        {f"{prefix}results/{name}" for name in stored} | {f"{prefix}errors.log", f"{prefix}manifest-sha256.txt"})
    assert sorted(manifest(destination, operation["id"])) == manifest_of(stored)  # each file once, its SHA-256
    assert done["results"]["manifestHref"] == f"{destination.url}/{prefix}manifest-sha256.txt"
    assert {b.name: bytes(b.content_settings.content_md5) for b in destination.list_blobs(
        name_starts_with=f"{prefix}results/")} == {f"{prefix}results/{n}": md5(d).digest() for n, d in stored.items()}
    assert error_log(destination, operation["id"]) == []
    assert killed.host.log().count("Host started at") == 1 + len(KILLS)
