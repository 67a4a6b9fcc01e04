"""`dicom-export`: load DICOM files into the service, export them to Azure Blob Storage, follow the export.

Talks only to the service's HTTP API, so the same commands work against the local host and Azure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

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
    errors_lines,
    exit_code,
    operations_lines,
    status_lines,
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
Environment: DICOM_EXPORT_URL (default {url}), DICOM_EXPORT_KEY (the function key),
DICOM_EXPORT_NOTIFY_SECRET (the secret that signs --notify-url notifications).
Credentials given as flags are sent to the service and never printed.
"""


NOTIFY_SECRET = "DICOM_EXPORT_NOTIFY_SECRET"


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


def read_identifiers(path: str) -> list[tuple[str, int]]:
    """(identifier, line number) for each line holding one; a # starts a comment anywhere on a line, blank
    lines are ignored; '-' reads stdin. A line that is no `study[/series[/sop]]` is an ArgumentTypeError
    naming the file and line."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        pieces = [p.strip() for p in value.split("/")]
        if len(pieces) > 3 or not all(pieces) or any(" " in p or "\t" in p for p in pieces):
            raise argparse.ArgumentTypeError(f"{path} line {number}: {value[:80]!r} is not of the form "
                                             "STUDY[/SERIES[/SOP]]")
        found.append(("/".join(pieces), number))
    return found


def where_from(message: str, lines: dict[int, str]) -> str:
    """The service's message with each `source.settings.values[i]` it names followed by the file and line."""
    return re.sub(r"source\.settings\.values\[(\d+)\]",
                  lambda m: m.group(0) + (f" ({lines[int(m.group(1))]})" if int(m.group(1)) in lines else ""),
                  message)


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
                        help="identifiers, one a line (# starts a comment anywhere; blank lines ignored; - for stdin)")
    add_query_flags(export)
    export.add_argument("--all", action="store_true", dest="whole_store",
                        help="export every instance in the store (asks first on a terminal, unless --yes)")
    export.add_argument("--yes", action="store_true", help="do not ask before exporting the whole store")
    export.add_argument("--create-container", action="store_true",
                        help="create the destination container first if it does not exist (with the same credentials)")
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
    export.add_argument("--partition", metavar="NAME", help="read this data partition of the DICOMweb store "
                        "(POST /v1/partitions/NAME/export; docs/STORE_DICOMWEB.md)")
    linkage = export.add_argument_group("linkage table for the data controller (with --deidentify; "
                                        "docs/DEIDENTIFICATION.md): another container, its own credentials")
    where = linkage.add_mutually_exclusive_group()
    where.add_argument("--linkage-container-uri", metavar="URI", help="its container's URL, with a SAS when needed")
    where.add_argument("--linkage-connection-string", metavar="CS",
                       help="a storage connection string (with --linkage-container)")
    linkage.add_argument("--linkage-container", metavar="NAME", help="its container name, with --linkage-connection-string")
    linkage.add_argument("--linkage-managed-identity", action="store_true",
                         help="the service writes it with its managed identity (with --linkage-container-uri)")
    export.add_argument("--notify-url", metavar="URL",
                        help=f"POST the final status to this https URL when the export ends, signed with the secret "
                             f"in env {NOTIFY_SECRET} (docs/NOTIFICATIONS.md)")
    export.add_argument("--idempotency-key", help="repeating a request with the same key returns the same operation")
    export.add_argument("--wait", action="store_true", help="show live progress until the export ends")
    export.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")

    search = command("search", "show what an export by query would take: the matching studies, series or "
                               "instances, with counts")
    add_query_flags(search)
    search.add_argument("--limit", type=int, default=100, help="matches shown per query at most (default 100)")

    for name, help in (("status", "show an export operation"), ("wait", "follow an operation until it ends"),
                       ("cancel", "cancel an operation"),
                       ("pause", "pause a running export: batches already running finish, nothing new starts"),
                       ("resume", "resume a paused export"),
                       ("retry", "continue a failed or canceled export from its last checkpoint, same id")):
        sub = command(name, help)
        sub.add_argument("operation_id", metavar="ID")
        if name == "wait":
            sub.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")

    listing = command("list", "list export operations, newest first, one page at a time")
    listing.add_argument("--status", action="append", metavar="STATUS",
                         help="only operations in this status (repeatable: notStarted, running, paused, completed, "
                              "failed, canceled)")
    pages = listing.add_mutually_exclusive_group()
    pages.add_argument("--top", type=int, default=50, metavar="N", help="operations per page (default 50)")
    pages.add_argument("--all", action="store_true", dest="every_page", help="every operation, on one list")
    listing.add_argument("--continuation", metavar="TOKEN", help="the page after the one that printed TOKEN")

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

    @staticmethod
    def print_lines(lines: list[str]) -> None:
        """Reports go to stdout as plain lines, never folded: whole paths and digests, for grep and cut."""
        for line in lines:
            print(line)

    def finish(self, operation: dict) -> int:
        if self.json:
            self.print_json(operation)
        else:
            self.print_lines(status_lines(operation))
        return exit_code(operation)

    def cmd_load(self) -> int:
        from . import loader  # pydicom is slow to import; only `load` needs it

        a = self.args
        report = loader.load(self.api, a.paths, self.err, workers=a.workers, max_files=a.batch_files,
                             max_bytes=a.batch_mb << 20)
        if self.json:
            self.print_json(report.as_json())
        else:
            self.print_lines(load_summary(report))
        return report.exit_code

    def cmd_export(self) -> int:
        a = self.args
        identifiers = list(a.identifiers or [])
        lines: dict[int, str] = {}  # the request's values[i] → where it was read from
        if a.from_file:
            try:
                for value, number in read_identifiers(a.from_file):
                    lines[len(identifiers)] = f"{a.from_file} line {number}"
                    identifiers.append(value)
            except OSError as e:
                self.parser.error(f"--from-file: {e.strerror}: {a.from_file}")
            except argparse.ArgumentTypeError as e:
                self.parser.error(f"--from-file: {e}")
        queries = queries_of(a)
        if identifiers and queries:
            self.parser.error("give identifiers (--study, --series, --instance, --from-file) or --query, not both")
        if (identifiers or queries) and a.whole_store:
            self.parser.error("--all exports the whole store: give it without --study, --series, --instance, "
                              "--from-file or --query")
        if not identifiers and not queries and not a.whole_store:
            self.parser.error("nothing to export: give --study, --series, --instance, --from-file, --query or --all")
        outputs = self.research_outputs() | self.notification()  # their usage errors before any question
        if a.whole_store and not a.yes and sys.stdin.isatty() and sys.stderr.isatty() and \
                input("export every instance in the store? [y/N] ").strip().lower() not in ("y", "yes"):
            self.err.print("nothing exported")
            return EXIT_USAGE
        where = destination(a, self.parser, True)
        if a.create_container and where.create_container():
            self.err.print("destination container created", markup=False)
        request: dict = {"destination": {"type": "azureblob", "settings": where.export_settings()}}
        if queries:
            request["source"] = {"type": "query", "settings": {"queries": queries}}
        elif identifiers:
            request["source"] = {"type": "identifiers", "settings": {"values": identifiers}}
        request |= outputs
        try:
            route = f"/v1/partitions/{quote(a.partition, safe='')}/export" if a.partition else "/v1/export"
            started = self.api.start_export(request, a.idempotency_key, route)
        except ApiError as e:
            raise ApiError(e.status, where_from(e.message, lines)) from None
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

    def notification(self) -> dict[str, Any]:
        """The request's `notification` from --notify-url; the secret comes from the environment, never argv."""
        if not self.args.notify_url:
            return {}
        secret = os.environ.get(NOTIFY_SECRET)
        if not secret:
            self.parser.error(f"--notify-url needs the secret that signs the notification in the environment "
                              f"variable {NOTIFY_SECRET} (not on the command line, where other users can read it)")
        return {"notification": {"url": self.args.notify_url, "secret": secret}}

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
        linkage = self.linkage()
        if linkage:
            if not a.deidentify:
                self.parser.error("--linkage-... needs --deidentify: the linkage table is for de-identified exports")
            extra["deidentification"]["linkage"] = {"type": "azureblob", "settings": linkage.export_settings()}
        return extra

    def linkage(self) -> Destination | None:
        """The linkage table's container from the --linkage-... flags; None without them."""
        a = self.args
        if not (a.linkage_container_uri or a.linkage_connection_string or a.linkage_container
                or a.linkage_managed_identity):
            return None
        if a.linkage_managed_identity and not a.linkage_container_uri:
            self.parser.error("--linkage-managed-identity goes with --linkage-container-uri")
        if bool(a.linkage_connection_string) != bool(a.linkage_container):
            self.parser.error("--linkage-connection-string and --linkage-container go together")
        if not (a.linkage_container_uri or a.linkage_connection_string):
            self.parser.error("give --linkage-container-uri, or --linkage-connection-string with --linkage-container")
        return Destination(a.linkage_container_uri, a.linkage_connection_string, a.linkage_container,
                           a.linkage_managed_identity)

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

    def cmd_pause(self) -> int:
        return self.control("pause", "pause requested")

    def cmd_resume(self) -> int:
        return self.control("resume", "resume requested")

    def cmd_retry(self) -> int:
        return self.control("retry", "retry started")

    def control(self, action: str, done: str) -> int:
        operation_id = self.args.operation_id
        self.api.control(operation_id, action)
        if self.json:
            self.print_json({"operationId": operation_id, f"{action}Requested": True})
        else:
            self.out.print(f"{done} for {operation_id}\n  follow: dicom-export wait {operation_id}")
        return 0

    def cmd_list(self) -> int:
        a = self.args
        statuses = [s.strip() for value in a.status or [] for s in value.split(",") if s.strip()]
        if a.top < 1:
            self.parser.error("--top must be at least 1")
        operations, token = self.api.operations(statuses, None if a.every_page else a.top, a.continuation)
        if self.json:
            self.print_json(operations)
        elif not operations:
            self.out.print("no operations" + (f" with status {', '.join(statuses)}" if statuses else ""))
        else:
            self.print_lines(operations_lines(operations))
        if token:
            more = [f"--status {','.join(statuses)}"] if statuses else []
            self.err.print(f"more: dicom-export list {' '.join(more + [f'--top {a.top}'])} --continuation {token}",
                           markup=False, soft_wrap=True)
        return 0

    def cmd_errors(self) -> int:
        href = self.result_href("errorHref")
        entries = self.read_destination(href, lambda client: list(read_errors_log(client, self.args.operation_id)))
        if self.json:
            self.print_json(entries)
        else:
            self.print_lines(errors_lines(href, entries))
        return 0

    def cmd_verify(self) -> int:
        from . import verify

        operation_id = self.args.operation_id
        operation = self.api.operation(operation_id)
        href = (operation.get("results") or {}).get("manifestHref")
        status = operation.get("status")
        if not href:
            if is_terminal(operation):  # canceled before it could commit one
                self.err.print(f"operation {operation_id} is {status} and committed no manifest: the files it "
                               "wrote cannot be verified", markup=False, soft_wrap=True)
                return EXIT_FAILED
            self.err.print(f"operation {operation_id} is {status}: its manifest is committed when it ends",
                           markup=False, soft_wrap=True)
            return EXIT_USAGE
        report = self.read_destination(href, lambda client: verify.verify(client, operation, self.err))
        if verify.recorded_manifest(operation) is None:
            self.err.print(f"operation {operation_id} records no digest of its manifest: checked against the "
                           "manifest alone", markup=False, soft_wrap=True)
        if self.json:
            self.print_json(report.as_json())
        elif report.ok:
            self.out.print(f"{verify.summary(report)}: every file intact", markup=False, soft_wrap=True)
        else:
            self.print_lines([verify.summary(report), *verify.problem_lines(report)])
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
        if getattr(a, "linkage_container_uri", None) or getattr(a, "linkage_connection_string", None):
            found += Destination(a.linkage_container_uri, a.linkage_connection_string).secrets()
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
