"""The command line without a server: arguments, usage errors, exit codes, progress line, secrets."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.api import TERMINAL
from cli.destination import Destination, container_url, parse_error_line
from cli.main import main, read_identifiers, redact, where_from
from cli.progress import elapsed_seconds, exit_code, operations_lines, plural, progress_line
from shared.export import operation

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m cli ARGS` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=60, check=False)


@pytest.mark.parametrize("operation, code", [
    ({"status": "completed", "results": {"exported": 5, "skipped": 0}}, 0),
    ({"status": "succeeded", "results": {"exported": 5, "skipped": 0}}, 0),
    ({"status": "completed", "results": {"exported": 5, "skipped": 2}}, 1),
    ({"status": "failed", "results": {"exported": 5, "skipped": 0}}, 2),
    ({"status": "canceled"}, 2),
    ({"status": "running", "results": {"exported": 1, "skipped": 1}}, 0),
])
def test_exit_codes_follow_the_final_status(operation: dict, code: int) -> None:
    assert exit_code(operation) == code


def test_clients_stop_waiting_at_the_statuses_after_which_the_service_changes_nothing() -> None:
    """cli.api.TERMINAL (the CLI, tests, benchmarks, the demo) is the service's own set."""
    assert set(TERMINAL) == set(operation.TERMINAL)


def test_progress_line_shows_counts_rate_and_elapsed() -> None:
    running = {"status": "running", "createdTime": "2024-01-01T00:00:00Z", "results": {"exported": 1200, "skipped": 3}}
    assert progress_line(running, 62.0) == "running · 1,200 exported · 3 skipped · 19.4 files/s · 0:01:02"
    assert progress_line({"status": "notStarted"}, None) == "notStarted · 0 exported · 0 skipped"
    # Once ended, elapsed runs from created to the last update, however late we look.
    done = {**running, "status": "completed", "lastUpdatedTime": "2024-01-01T00:00:10.1234567Z"}
    assert elapsed_seconds(done) == pytest.approx(10.123456)


def test_once_the_total_is_known_the_progress_line_shows_it_and_an_eta() -> None:
    running = {"status": "running", "results": {"exported": 1000, "skipped": 200, "total": 6000}}
    # 1 200 done in 60 s is 20 files/s: the 4 800 left take 240 s.
    assert progress_line(running, 60.0) == ("running · 1,000 exported · 200 skipped · of 6,000 · 20.0 files/s · "
                                            "0:01:00 · ETA 0:04:00")
    paused = {**running, "status": "paused"}  # no rate to speak of while paused: the total, no ETA
    assert progress_line(paused, 60.0).endswith("of 6,000 · 20.0 files/s · 0:01:00")
    assert "of" not in progress_line({**running, "results": {"exported": 5, "skipped": 0}}, 60.0).split("·")[3]


def test_help_documents_every_command_and_the_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    for word in ("load", "export", "status", "wait", "cancel", "pause", "resume", "retry", "list", "errors", "verify",
                 "exit codes",
                 "0  done", "1  done with skips", "2  ", "3  usage error", "DICOM_EXPORT_URL", "DICOM_EXPORT_KEY"):
        assert word in result.stdout
    assert "--connection-string" in run("export", "--help").stdout
    assert "--connection-string" in run("verify", "--help").stdout  # the destination flags of `errors`


@pytest.mark.parametrize("args, message", [
    (["export", "--connection-string", "UseDevelopmentStorage=true", "--container", "x"], "nothing to export"),
    (["list", "--top", "0"], "--top must be at least 1"),
    (["export", "--study", "1.2"], "one of the arguments --container-uri --connection-string is required"),
    (["export", "--series", "1.2", "--container-uri", "http://a/c"], "is not of the form STUDY/SERIES"),
    (["export", "--instance", "1/2", "--container-uri", "http://a/c"], "is not of the form STUDY/SERIES/SOP"),
    (["export", "--study", "1", "--connection-string", "UseDevelopmentStorage=true"], "needs --container"),
    (["export", "--study", "1", "--connection-string", "UseDevelopmentStorage=true", "--container", "c",
      "--managed-identity"], "--managed-identity goes with --container-uri"),
    (["export", "--study", "1", "--from-file", "/no/such/file", "--container-uri", "http://a/c"], "--from-file"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_usage_errors_exit_3_and_say_what_is_wrong(args: list[str], message: str,
                                                   capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--url", UNREACHABLE, *args])
    assert exit_.value.code == 3
    assert message in capsys.readouterr().err


def test_unreachable_service_exits_3_without_echoing_credentials() -> None:
    secret_key = "AAAAsecretkeyBBBB=="
    sas = "sv=2024-01-01&sp=cw&sig=S3cr3tSignature%3D"
    result = run("--url", UNREACHABLE, "--key", "fn-key-123", "export", "--study", "1.2",
                 "--connection-string", f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={secret_key}",
                 "--container", "c")
    assert result.returncode == 3
    assert "cannot reach http://127.0.0.1:9: no connection (is the service running there?" in result.stderr
    result2 = run("--url", UNREACHABLE, "export", "--study", "1.2", "--container-uri", f"https://a/c?{sas}")
    assert result2.returncode == 3
    for output in (result.stdout + result.stderr, result2.stdout + result2.stderr):
        for secret in (secret_key, "fn-key-123", "S3cr3tSignature"):
            assert secret not in output


def test_redact_hides_whole_secrets_and_their_credential_parts() -> None:
    cs = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=k3y==;EndpointSuffix=core.windows.net"
    secrets = Destination(connection_string=cs).secrets() + Destination(container_uri="https://a/c?sv=1&sig=abc").secrets()
    text = redact(f"failed with {cs}; key k3y== and sig=abc in https://a/c?sv=1&sig=abc", secrets)
    assert "k3y" not in text and "abc" not in text and "***" in text


def test_identifiers_file_ignores_comments_anywhere_and_blank_lines(tmp_path: Path) -> None:
    listing = tmp_path / "ids.txt"
    listing.write_text("# studies to send\n1.2.3\n\n  12.3/4.5.678  # a trailing comment\n#123/4\n"
                       "123.456/7.8/9.1011.12#\n")
    assert read_identifiers(str(listing)) == [("1.2.3", 2), ("12.3/4.5.678", 4), ("123.456/7.8/9.1011.12", 6)]
    listing.write_text("1.2.3\n1.2/3/4/5\n")
    with pytest.raises(argparse.ArgumentTypeError, match=f"{listing} line 2: '1.2/3/4/5' is not of the form"):
        read_identifiers(str(listing))


def test_the_services_values_index_is_shown_with_the_file_and_line() -> None:
    message = "source.settings.values[1]: '1.2.abc' is not a valid UID"
    assert where_from(message, {0: "ids.txt line 2", 1: "ids.txt line 5"}) == (
        "source.settings.values[1] (ids.txt line 5): '1.2.abc' is not a valid UID")
    assert where_from(message, {}) == message  # given with --study: no file to name


def test_export_request_carries_the_destination_as_given() -> None:
    assert Destination(container_uri="https://a/c?sig=x", managed_identity=False).export_settings() == {
        "blobContainerUri": "https://a/c?sig=x"}
    assert Destination(container_uri="https://a/c", managed_identity=True).export_settings() == {
        "blobContainerUri": "https://a/c", "useManagedIdentity": True}
    assert Destination(connection_string="UseDevelopmentStorage=true", container="export").export_settings() == {
        "connectionString": "UseDevelopmentStorage=true", "blobContainerName": "export"}


def test_errors_log_lines_are_read_whatever_the_case_of_their_keys() -> None:
    assert parse_error_line(b'{"Timestamp": "t", "Identifier": "1.2", "Error": "not found"}') == {
        "timestamp": "t", "identifier": "1.2", "error": "not found"}
    assert parse_error_line('{"timestamp": "t", "identifier": "1.2/3", "error": "gone"}')["identifier"] == "1.2/3"
    assert parse_error_line(b"garbage")["error"] == "garbage"
    op = "0123456789abcdef0123456789abcdef"
    assert container_url(f"http://127.0.0.1:10000/devstoreaccount1/export/{op}/errors.log", op) == (
        "http://127.0.0.1:10000/devstoreaccount1/export")


def test_the_operations_list_fits_an_80_column_terminal() -> None:
    operation = {"operationId": "0123456789abcdef0123456789abcdef", "status": "notStarted",
                 "createdTime": "2026-11-28T19:12:48.483704Z", "results": {"exported": 123456, "skipped": 3}}
    header, line = operations_lines([operation])
    assert line == "0123456789abcdef0123456789abcdef notStarted 2026-11-28 19:12:48  123,456       3"
    assert len(header) <= 80 and len(line) <= 80


def test_the_progress_line_says_what_is_being_retried_and_when() -> None:
    operation = {"status": "running", "results": {"exported": 0, "skipped": 0},
                 "retrying": {"reason": "reading the DICOM store failed: connection refused", "attempt": 2,
                              "maxAttempts": 4, "nextAttemptTime": "2024-01-01T00:01:00Z"}}
    line = progress_line(operation, 30.0, now=datetime(2024, 1, 1, 0, 0, 20, tzinfo=UTC))
    assert line == ("running · 0 exported · 0 skipped · 0.0 files/s · 0:00:30 · retrying (attempt 2 of 4, next in "
                    "0:00:40): reading the DICOM store failed: connection refused")


def test_counts_read_as_english() -> None:
    assert [plural(1, "file"), plural(2, "file"), plural(1024, "study", "studies")] == [
        "1 file", "2 files", "1,024 studies"]


def test_export_options_become_the_requests_output_metadata_and_deidentification() -> None:
    from cli.main import Cli, build_parser

    def extra(*options: str) -> dict:
        parser = build_parser()
        args = parser.parse_args(["export", "--study", "1.2.3", "--container-uri", "https://a/c?sig=x", *options])
        return Cli(args, parser).research_outputs()

    assert extra() == {}
    assert extra("--transfer-syntax", "1.2.840.10008.1.2.4.90") == {
        "output": {"format": "dicom", "transferSyntax": "1.2.840.10008.1.2.4.90"}}
    assert extra("--format", "png", "--bit-depth", "16", "--window", "40,400") == {
        "output": {"format": "png", "bitDepth": 16, "window": {"center": 40.0, "width": 400.0}}}
    assert extra("--format", "jpeg", "--quality", "90", "--window", "minmax", "--metadata", "jsonl,parquet") == {
        "output": {"format": "jpeg", "quality": 90, "window": "minmax"},
        "metadata": {"formats": ["jsonl", "parquet"]}}
    assert extra("--deidentify", "--option", "retainUids") == {
        "deidentification": {"profile": "basic", "options": ["retainUids"]}}
    assert extra("--deidentify", "--linkage-container-uri", "https://a/link?sig=y") == {
        "deidentification": {"profile": "basic", "options": [], "linkage": {
            "type": "azureblob", "settings": {"blobContainerUri": "https://a/link?sig=y"}}}}
    assert extra("--deidentify", "--linkage-connection-string", "AccountName=a;SharedAccessSignature=sig=z",
                 "--linkage-container", "link")["deidentification"]["linkage"]["settings"] == {
        "connectionString": "AccountName=a;SharedAccessSignature=sig=z", "blobContainerName": "link"}


@pytest.mark.parametrize(("flags", "says"), [
    (["--linkage-container-uri", "https://a/link?sig=y"], "needs --deidentify"),
    (["--deidentify", "--linkage-container", "link"], "go together"),
    (["--deidentify", "--linkage-connection-string", "UseDevelopmentStorage=true"], "go together"),
    (["--deidentify", "--linkage-managed-identity"], "goes with --linkage-container-uri"),
])
def test_linkage_flags_misused_are_usage_errors(flags, says) -> None:
    result = run("export", "--study", "1.2.3", "--container-uri", "https://a/c?sig=x", *flags, "--url", UNREACHABLE)
    assert result.returncode == 3 and says in result.stderr and "sig=y" not in result.stderr


def test_notify_url_takes_its_secret_from_the_environment_never_the_command_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import Cli, build_parser

    parser = build_parser()
    args = parser.parse_args(["export", "--study", "1.2.3", "--container-uri", "https://a/c?sig=x",
                              "--notify-url", "https://hooks.example.org/x"])
    monkeypatch.setenv("DICOM_EXPORT_NOTIFY_SECRET", "s3cret-from-the-environment")
    assert Cli(args, parser).notification() == {
        "notification": {"url": "https://hooks.example.org/x", "secret": "s3cret-from-the-environment"}}
    with pytest.raises(SystemExit):  # no --notify-secret option: a secret in argv is readable by other users
        parser.parse_args(["export", "--study", "1.2.3", "--notify-secret", "x"])

    result = run("export", "--study", "1.2.3", "--container-uri", "https://a/c?sig=x", "--url", UNREACHABLE,
                 "--notify-url", "https://hooks.example.org/x",
                 env={k: v for k, v in os.environ.items() if k != "DICOM_EXPORT_NOTIFY_SECRET"})
    assert result.returncode == 3 and "DICOM_EXPORT_NOTIFY_SECRET" in result.stderr


def test_a_de_identification_option_without_deidentify_is_a_usage_error() -> None:
    result = run("export", "--study", "1.2.3", "--container-uri", "https://a/c?sig=x", "--option", "retainUids",
                 "--url", UNREACHABLE)
    assert result.returncode == 3 and "--option needs --deidentify" in result.stderr
