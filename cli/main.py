"""`dicom-export`: load DICOM files into the service, export them to Azure Blob Storage, follow the export.

Talks only to the service's HTTP API, so the same commands work against the local host and Azure.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from azure.core.exceptions import AzureError, HttpResponseError
from rich.console import Console

from .api import DEFAULT_URL, Api, ApiError, Unreachable, is_terminal
from .destination import Destination, read_errors_log
from .query import add_query_flags, queries_of, search_lines

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient
from .progress import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    errors_table,
    exit_code,
    operations_table,
    status_table,
    watch,
)
from .summary import load_summary

EPILOG = """\
exit codes:
  0  done: every file stored (load); export completed with nothing skipped; every file intact (verify)
  1  done with skips: files not DICOM or duplicates (load); export completed with skipped files
  2  files rejected by the server (load); export failed or canceled; any file not intact (verify)
  3  usage error, or the service could not be reached or refused the request
  130  interrupted (Ctrl-C); an export being followed keeps running

`status` exits as `wait` would once the operation has ended, and 0 while it runs.
Environment: DICOM_EXPORT_URL (default {url}), DICOM_EXPORT_KEY (the function key).
Credentials given as flags are sent to the service and never printed.
"""


class Parser(argparse.ArgumentParser):
    """argparse, exiting with 3 (usage error) instead of its own 2, which means 'failed' here."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def identifier(parts: int, example: str):
    """An argparse type: a `study[/series[/sop]]` string with exactly `parts` parts."""
    def parse(value: str) -> str:
        pieces = [p.strip() for p in value.strip().split("/")]
        if len(pieces) != parts or not all(pieces):
            raise argparse.ArgumentTypeError(f"{value!r} is not of the form {example}")
        return "/".join(pieces)
    return parse


def read_identifiers(path: str) -> list[str]:
    """One identifier a line; blank lines and lines starting with # are ignored; '-' reads stdin."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    return [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"the service's base URL (env DICOM_EXPORT_URL, default {DEFAULT_URL})")
    common.add_argument("--key", default=argparse.SUPPRESS, help="function key (env DICOM_EXPORT_KEY)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output on stdout")

    parser = Parser(prog="dicom-export", description=__doc__, parents=[common], epilog=EPILOG.format(url=DEFAULT_URL),
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def command(name: str, help: str) -> Parser:
        sub = commands.add_parser(name, help=help, description=help, parents=[common], epilog=EPILOG.format(
            url=DEFAULT_URL), formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(command_parser=sub)  # usage errors found later show this command's usage
        return sub

    load = command("load", "store the DICOM files found under PATH... through STOW-RS")
    load.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders (walked recursively)")
    load.add_argument("--workers", type=int, default=4, help="parallel requests (default 4)")
    load.add_argument("--batch-files", type=int, default=16, help="files per request at most (default 16)")
    load.add_argument("--batch-mb", type=int, default=32, help="MiB per request at most (default 32)")

    export = command("export", "export studies, series or instances to an Azure Blob container")
    export.add_argument("--study", dest="identifiers", action="append", type=identifier(1, "STUDY"),
                        metavar="STUDY", help="a study UID (repeatable)")
    export.add_argument("--series", dest="identifiers", action="append", type=identifier(2, "STUDY/SERIES"),
                        metavar="STUDY/SERIES", help="a series (repeatable)")
    export.add_argument("--instance", dest="identifiers", action="append",
                        type=identifier(3, "STUDY/SERIES/SOP"), metavar="STUDY/SERIES/SOP",
                        help="one instance (repeatable)")
    export.add_argument("--from-file", metavar="FILE",
                        help="identifiers, one a line (# comments and blank lines ignored; - for stdin)")
    add_query_flags(export)
    add_destination(export, required=True,
                    identity_help="the service writes with its managed identity (with --container-uri)")
    outputs = export.add_argument_group("research outputs (docs/OUTPUTS.md; the service checks the values)")
    outputs.add_argument("--format", choices=("dicom", "png", "jpeg"), help="what each instance becomes "
                         "(default: DICOM as stored)")
    outputs.add_argument("--transfer-syntax", metavar="UID", help="re-encode DICOM in this transfer syntax")
    outputs.add_argument("--allow-lossy", action="store_true", help="accept a lossy --transfer-syntax")
    outputs.add_argument("--bit-depth", type=int, choices=(8, 16), help="PNG bits per grey sample (default 8)")
    outputs.add_argument("--window", metavar="auto|minmax|CENTER,WIDTH", help="grey window of PNG/JPEG frames")
    outputs.add_argument("--quality", type=int, metavar="1-100", help="JPEG quality (default 95)")
    outputs.add_argument("--metadata", metavar="jsonl,parquet", help="also write a metadata table in these formats")
    outputs.add_argument("--metadata-attribute", dest="metadata_attributes", action="append", metavar="KEYWORD",
                         help="a column of the metadata table (repeatable; default: a documented set)")
    outputs.add_argument("--deidentify", action="store_true", help="de-identify (PS3.15 basic profile)")
    outputs.add_argument("--option", dest="deid_options", action="append", metavar="OPTION",
                         help="a de-identification option, e.g. retainUids (repeatable; with --deidentify)")
    export.add_argument("--idempotency-key", help="repeating a request with the same key returns the same operation")
    export.add_argument("--wait", action="store_true", help="show live progress until the export ends")
    export.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")

    search = command("search", "show what an export by query would take: the matching studies, series or "
                               "instances, with counts")
    add_query_flags(search)
    search.add_argument("--limit", type=int, default=100, help="matches shown per query at most (default 100)")

    for name, help in (("status", "show an export operation"), ("wait", "follow an operation until it ends"),
                       ("cancel", "cancel an operation")):
        sub = command(name, help)
        sub.add_argument("operation_id", metavar="ID")
        if name == "wait":
            sub.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")

    listing = command("list", "list export operations, newest first")
    listing.add_argument("--status", action="append", metavar="STATUS",
                         help="only operations in this status (repeatable: notStarted, running, completed, "
                              "failed, canceled)")

    errors = command("errors", "print an operation's errors.log (needs the destination's credentials)")
    verify = command("verify", "check every exported file against the operation's SHA-256 manifest and its "
                               "Content-MD5 (needs the destination's credentials)")
    for sub in (errors, verify):
        sub.add_argument("operation_id", metavar="ID")
        add_destination(sub, required=False,
                        identity_help="read with your own Azure sign-in (azure-identity's DefaultAzureCredential: "
                                      "az login, environment variables...; needs Storage Blob Data Reader), "
                                      "with --container-uri")
    return parser


def add_destination(parser: Parser, required: bool, identity_help: str) -> None:
    group = parser.add_argument_group("destination")
    where = group.add_mutually_exclusive_group(required=required)
    where.add_argument("--container-uri", metavar="URI", help="the container's URL, with a SAS when needed")
    where.add_argument("--connection-string", metavar="CS", help="a storage connection string (use with --container)")
    group.add_argument("--container", metavar="NAME", help="the container name, with --connection-string")
    group.add_argument("--managed-identity", action="store_true", help=identity_help)


def destination(args: argparse.Namespace, parser: Parser, for_export: bool) -> Destination:
    if args.managed_identity and not args.container_uri:
        parser.error("--managed-identity goes with --container-uri")
    if for_export and args.connection_string and not args.container:
        parser.error("--connection-string needs --container NAME")
    if args.container and not args.connection_string:
        parser.error("--container goes with --connection-string")
    return Destination(args.container_uri, args.connection_string, args.container, args.managed_identity)


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every secret replaced by ***, longest first so parts of a secret do not survive."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class Cli:
    """One run: the parsed arguments, the API client and where output goes."""

    def __init__(self, args: argparse.Namespace, parser: Parser):
        self.args = args
        self.parser = getattr(args, "command_parser", parser)
        self.json = getattr(args, "json", False)
        self.following: str | None = None
        self.api = Api.from_env(getattr(args, "url", None), getattr(args, "key", None))
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)

    def print_json(self, value: object) -> None:
        print(json.dumps(value, indent=2, default=str))

    def finish(self, operation: dict) -> int:
        if self.json:
            self.print_json(operation)
        else:
            self.out.print(status_table(operation))
        return exit_code(operation)

    def cmd_load(self) -> int:
        from . import loader  # pydicom is slow to import; only `load` needs it

        a = self.args
        report = loader.load(self.api, a.paths, self.err, workers=a.workers, max_files=a.batch_files,
                             max_bytes=a.batch_mb << 20)
        if self.json:
            self.print_json(report.as_json())
        else:
            load_summary(report, self.out)
        return report.exit_code

    def cmd_export(self) -> int:
        a = self.args
        identifiers = list(a.identifiers or [])
        if a.from_file:
            try:
                identifiers += read_identifiers(a.from_file)
            except OSError as e:
                self.parser.error(f"--from-file: {e.strerror}: {a.from_file}")
        queries = queries_of(a)
        if identifiers and queries:
            self.parser.error("give identifiers (--study, --series, --instance, --from-file) or --query, not both")
        if not identifiers and not queries:
            self.parser.error("nothing to export: give --study, --series, --instance, --from-file or --query")
        source = {"type": "query", "settings": {"queries": queries}} if queries else \
            {"type": "identifiers", "settings": {"values": identifiers}}
        request = {"source": source,
                   "destination": {"type": "azureblob",
                                   "settings": destination(a, self.parser, True).export_settings()}}
        request |= self.research_outputs()
        started = self.api.start_export(request, a.idempotency_key)
        if a.wait:
            if not self.json:
                self.err.print(f"export {started['id']} started")
            return self.follow(started["id"], a.interval)
        if self.json:
            self.print_json(started)
        else:
            self.out.print(f"export {started['id']} started\n  status: {started.get('href', '')}\n"
                           f"  follow: dicom-export wait {started['id']}")
        return 0

    def research_outputs(self) -> dict[str, Any]:
        """The request's `output`, `metadata` and `deidentification` from the export options."""
        a, extra = self.args, dict[str, Any]()
        output: dict[str, Any] = {k: v for k, v in (("transferSyntax", a.transfer_syntax), ("bitDepth", a.bit_depth),
                                                    ("quality", a.quality)) if v is not None}
        if a.allow_lossy:
            output["allowLossy"] = True
        if a.window:
            center, comma, width = a.window.partition(",")
            try:
                output["window"] = {"center": float(center), "width": float(width)} if comma else a.window
            except ValueError:
                self.parser.error("--window: give auto, minmax or CENTER,WIDTH (numbers)")
        if output or a.format:
            extra["output"] = {"format": a.format or "dicom", **output}
        if a.metadata or a.metadata_attributes:
            formats = [f.strip() for f in (a.metadata or "jsonl").split(",") if f.strip()]
            extra["metadata"] = {"formats": formats, **({"attributes": a.metadata_attributes}
                                                        if a.metadata_attributes else {})}
        if a.deidentify or a.deid_options:
            if not a.deidentify:
                self.parser.error("--option needs --deidentify")
            extra["deidentification"] = {"profile": "basic", "options": a.deid_options or []}
        return extra

    def cmd_search(self) -> int:
        queries = queries_of(self.args)
        if not queries:
            self.parser.error("nothing to search: give --query KEY=VALUE (and --where between queries)")
        found = self.api.search(queries, self.args.limit)
        if self.json:
            self.print_json(found)
        else:
            for line in search_lines(found):
                self.out.print(line, markup=False, soft_wrap=True, highlight=False)
        return 0

    def cmd_status(self) -> int:
        return self.finish(self.api.operation(self.args.operation_id))

    def cmd_wait(self) -> int:
        return self.follow(self.args.operation_id, self.args.interval)

    def follow(self, operation_id: str, interval: float) -> int:
        self.following = operation_id  # what Ctrl-C leaves running
        return self.finish(watch(self.api, operation_id, self.err, interval))

    def cmd_cancel(self) -> int:
        self.api.cancel(self.args.operation_id)
        if self.json:
            self.print_json({"operationId": self.args.operation_id, "cancelRequested": True})
        else:
            self.out.print(f"cancel requested for {self.args.operation_id}")
        return 0

    def cmd_list(self) -> int:
        statuses = [s.strip() for value in self.args.status or [] for s in value.split(",") if s.strip()]
        operations = self.api.operations(statuses)
        if self.json:
            self.print_json(operations)
        elif not operations:
            self.out.print("no operations" + (f" with status {', '.join(statuses)}" if statuses else ""))
        else:
            self.out.print(operations_table(operations))
        return 0

    def cmd_errors(self) -> int:
        href = self.result_href("errorHref")
        entries = self.read_destination(href, lambda client: list(read_errors_log(client, self.args.operation_id)))
        if self.json:
            self.print_json(entries)
        else:
            self.out.print(errors_table(href, entries))
        return 0

    def cmd_verify(self) -> int:
        from . import verify

        operation_id = self.args.operation_id
        href = self.result_href("manifestHref")
        report = self.read_destination(href, lambda client: verify.verify(client, operation_id, href, self.err))
        if self.json:
            self.print_json(report.as_json())
        elif report.ok:
            self.out.print(f"{verify.summary(report)}: every file intact")
        else:
            self.out.print(verify.problems_table(report))
        return EXIT_OK if report.ok else EXIT_FAILED

    def result_href(self, name: str) -> str:
        """`results.<name>` of the operation; ApiError when it has none (yet)."""
        operation = self.api.operation(self.args.operation_id)
        href = (operation.get("results") or {}).get(name)
        if not href:
            raise ApiError(404, f"operation {self.args.operation_id} ({operation.get('status')}) has no {name}"
                           + (" yet" if not is_terminal(operation) else ""))
        return href

    def read_destination[T](self, href: str, read: Callable[[ContainerClient], T]) -> T:
        """`read` the operation's blobs with the destination flags; a clear error when credentials are missing."""
        where = destination(self.args, self.parser, False)
        try:
            return read(where.container_client(href, self.args.operation_id))
        except HttpResponseError as e:
            if self.args.connection_string or self.args.container_uri:
                raise
            raise ApiError(e.status_code or 0, f"{href} cannot be read without credentials: give the destination "
                           "as to `export` (--connection-string with --container, or --container-uri with a SAS "
                           "or --managed-identity)") from None

    def secrets(self) -> list[str]:
        a = self.args
        found = [self.api.key or ""]
        if hasattr(a, "container_uri"):
            found += Destination(a.container_uri, a.connection_string).secrets()
        return [s for s in found if s]


def describe(error: Exception) -> str:
    """One line saying what went wrong, for the user."""
    if isinstance(error, ApiError):
        return f"HTTP {error.status}: {error.message}"
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cli = Cli(args, parser)
    try:
        return getattr(cli, f"cmd_{args.command}")()
    except (Unreachable, ApiError, AzureError, FileNotFoundError) as e:
        cli.err.print(f"dicom-export: error: {redact(describe(e), cli.secrets())}", markup=False, soft_wrap=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        following = f"; the export keeps running (`dicom-export cancel {cli.following}` stops it)" if cli.following \
            else ""
        cli.err.print(f"interrupted{following}", markup=False, soft_wrap=True)
        return 130
