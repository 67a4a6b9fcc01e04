"""`make demo`: the whole service on real data in seconds, leaving nothing running.

Starts Azurite and the local host on free ports, loads the DICOM files that ship inside the pydicom
wheel with the bulk loader, exports every stored study plus one study that does not exist into the
container `export`, follows the export live, then shows the final status, the exported blobs and
errors.log, and stops everything it started — also on Ctrl-C or SIGTERM.

    python -m scripts.demo [--work-dir DIR]   (from the project folder; `make demo` installs what is
                                               missing first; DIR, default .demo, is emptied first)
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import pydicom
from azure.storage.blob import BlobServiceClient
from rich.console import Console
from rich.rule import Rule
from rich.table import Table
from rich.tree import Tree

from cli import loader
from cli.api import Api
from cli.destination import Destination, read_errors_log
from cli.progress import errors_lines, plural, status_lines, watch
from devhost.azurite import Azurite, free_port
from testkit.host import ROOT, Host

CONTAINER = "export"
UNKNOWN_STUDY = "1.2.3.4.5.6.7.8.9"  # in no pydicom file: shows a skipped identifier in errors.log
PYDICOM_DATA = Path(pydicom.data.__file__).parent
# The wheel's data folders (the package's own code sits next to them).
DATA_FOLDERS = [PYDICOM_DATA / name for name in ("test_files", "charset_files", "palettes")]


def app_settings(storage: str, work: Path) -> dict[str, str]:
    """local.settings.json.example's values, with storage pointed at our Azurite and the secret key in `work`.

    Only these: the host reads neither local.settings.json nor app settings from the caller's environment.
    """
    values = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
    return {**values, "AzureWebJobsStorage": storage, "Export__SecretKeyFile": str(work / "export.key")}


def load_summary(report: loader.Report) -> Table:
    """What the load did, one row per kind of outcome and reason, with a few of the files."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for o in report.outcomes:
        reason = "" if o.stored else "same UIDs as another file, which was sent" if o.kind == loader.DUPLICATE \
            else o.reason
        groups[(o.kind, reason)].append(Path(o.path).name)
    table = Table(title=f"{plural(len(report.outcomes), 'file')} under {PYDICOM_DATA}", title_justify="left")
    for column in ("outcome", "files", "reason", "for example"):
        table.add_column(column, overflow="fold", justify="right" if column == "files" else "left")
    for (kind, reason), names in sorted(groups.items(), key=lambda item: -len(item[1])):
        table.add_row(kind, str(len(names)), reason, ", ".join(names[:3]) + (", …" if len(names) > 3 else ""))
    return table


def exported_tree(service: BlobServiceClient, operation_id: str) -> Tree:
    """<container>/<id>/results as study → series (files, bytes)."""
    series: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    prefix = f"{operation_id}/results/"
    for blob in service.get_container_client(CONTAINER).list_blobs(name_starts_with=prefix):
        study, series_uid, _ = blob.name[len(prefix):].split("/", 2)
        series[study][series_uid].append(blob.size)
    files = sum(len(s) for study in series.values() for s in study.values())
    size = sum(sum(s) for study in series.values() for s in study.values())
    tree = Tree(f"[bold]{CONTAINER}/{prefix}[/]  {plural(len(series), 'study', 'studies')}, "
                f"{plural(files, 'file')}, {size:,} bytes")
    for study, by_series in sorted(series.items()):
        sizes = [n for s in by_series.values() for n in s]
        node = tree.add(f"{study}  ({plural(len(sizes), 'file')}, {sum(sizes):,} bytes)")
        for series_uid, blob_sizes in sorted(by_series.items()):
            node.add(f"[dim]{series_uid}[/]  {plural(len(blob_sizes), 'file')}, {sum(blob_sizes):,} bytes")
    return tree


def run(console: Console, work: Path, started: float) -> int:
    shutil.rmtree(work, ignore_errors=True)
    azurite = Azurite(work / "azurite", free_port(), log_path=work / "azurite.log")
    host = Host(ROOT, work / "hub", env=app_settings(azurite.connection_string, work), log_path=work / "host.log")
    try:
        console.print(Rule("1. Azurite and the local host"))
        azurite.start()
        console.print(f"Azurite blob service on http://127.0.0.1:{azurite.blob_port} (data in {work / 'azurite'})")
        host.start(timeout=120)
        console.print(f"local host on {host.base_url} (log in {host.log_path}), "
                      f"{time.monotonic() - started:.1f} s after start")
        api = Api(host.base_url)

        console.print(Rule("2. Load pydicom's files with the bulk loader"))
        console.print(f"$ cd {PYDICOM_DATA}; dicom-export --url {host.base_url} load "
                      + " ".join(folder.name for folder in DATA_FOLDERS), style="dim")
        report = loader.load(api, DATA_FOLDERS, console)
        console.print(load_summary(report))

        console.print(Rule(f"3. Export {plural(len(report.studies), 'study', 'studies')} and one that does not exist"))
        identifiers = work / "identifiers.txt"
        identifiers.write_text("# every study the load stored, then one that is not in the store\n"
                               + "\n".join([*report.studies, UNKNOWN_STUDY]) + "\n")
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        service.create_container(CONTAINER)
        console.print(f"$ dicom-export --url {host.base_url} export --from-file {identifiers} "
                      f'--connection-string "$AZURITE" --container {CONTAINER} --wait', style="dim")
        destination = Destination(connection_string=azurite.connection_string, container=CONTAINER)
        request = {"source": {"type": "identifiers", "settings": {"values": [*report.studies, UNKNOWN_STUDY]}},
                   "destination": {"type": "azureblob", "settings": destination.export_settings()}}
        operation_id = api.start_export(request)["id"]
        operation = watch(api, operation_id, console, interval=0.25)
        console.print("\n".join(status_lines(operation)), markup=False, soft_wrap=True)

        console.print(Rule("4. Exported blobs"))
        console.print(exported_tree(service, operation_id))

        console.print(Rule("5. errors.log"))
        href = operation["results"]["errorHref"]
        entries = list(read_errors_log(destination.container_client(href, operation_id), operation_id))
        console.print("\n".join(errors_lines(href, entries)), markup=False, soft_wrap=True)
        return 0 if operation["status"] == "completed" else 2
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        host.stop()
        azurite.stop()
        console.print(Rule())
        console.print(f"host and Azurite stopped; {time.monotonic() - started:.1f} s in all")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".demo", help="data and logs (default .demo)")
    work = parser.parse_args(argv).work_dir.resolve()
    started = time.monotonic()
    console = Console(highlight=False)
    # Ctrl-C and SIGTERM (even where SIGINT was ignored when we started) leave through `finally`,
    # which stops everything started.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        return run(console, work, started)
    except KeyboardInterrupt:
        console.print("[bold]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
