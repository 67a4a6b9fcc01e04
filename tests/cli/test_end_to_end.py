"""Every `dicom-export` subcommand run as a user runs it, against the app on the local host and Azurite.

The host requires a function key here, so every call also shows the key travelling from
DICOM_EXPORT_KEY (or --key) and never being printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pydicom
import pytest
import requests
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from testkit.host import ROOT, Host, wait_for, write_keys

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
PYDICOM_FILES = sorted(TEST_FILES.glob("*.dcm"))  # the 78 files of the wheel, read locally (no downloads)
FUNCTION_KEY = "cli-test-function-key-0123456789"
UNKNOWN_STUDY = "1.2.3.4.5.6.7.8.9"

NOT_PART_10 = "not a DICOM Part 10 file (no DICM prefix) (0xC000 cannot understand)"
NO_STUDY = "missing Study Instance UID (0020,000D) (0xA900 data set does not match SOP class)"
NO_SOP_CLASS = "missing SOP Class UID (0008,0016) (0xA900 data set does not match SOP class)"
# What the store refuses among pydicom's files, in the server's words (see tests/dicomweb/test_pydicom_files.py).
REJECTED = {
    "ExplVR_BigEndNoMeta.dcm": NOT_PART_10,
    "rtstruct.dcm": NOT_PART_10,
    "JPEGLSNearLossless_08.dcm": NO_STUDY,
    "JPEGLSNearLossless_16.dcm": NO_STUDY,
    "SC_rgb_jls_lossy_line.dcm": NO_STUDY,
    "SC_rgb_jls_lossy_sample.dcm": NO_STUDY,
    "UN_sequence.dcm": NO_SOP_CLASS,
    "empty_charset_LEI.dcm": NO_SOP_CLASS,
    "meta_missing_tsyntax.dcm": NO_SOP_CLASS,
    "nested_priv_SQ.dcm": NO_SOP_CLASS,
    "no_meta_group_length.dcm": NO_SOP_CLASS,
    "priv_SQ.dcm": NO_SOP_CLASS,
}
# What the loader itself does not send: not DICOM, or the same instance (study/series/SOP UIDs) as a
# file before it, which the store would replace in whatever order the parallel requests land.
DUPLICATE_OF = {
    "ExplVR_LitEndNoMeta.dcm": "ExplVR_BigEndNoMeta.dcm",
    "JPEG2000.dcm": "JPEG2000-embedded-sequence-delimiter.dcm",
    "JPGExtended.dcm": "JPEG-lossy.dcm",
    **{name: "MR_small.dcm" for name in (
        "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm",
        "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_padded.dcm", "MR_truncated.dcm")},
    "SC_rgb_jpeg_app14_dcmd.dcm": "SC_jpeg_no_color_transform_2.dcm",
    "SC_rgb_jpeg_dcmd.dcm": "SC_rgb_jpeg.dcm",
    **{name: "SC_rgb_jpeg_gdcm.dcm" for name in (
        "SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm", "SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle_2frame.dcm",
        "SC_rgb_rle_32bit.dcm", "SC_rgb_rle_32bit_2frame.dcm")},
    "SC_rgb_small_odd_big_endian.dcm": "SC_rgb_small_odd.dcm",
    "SC_ybr_full_422_uncompressed.dcm": "SC_rgb_dcmtk_+eb+cy+n2.dcm",
    "liver_expb_1frame.dcm": "liver_1frame.dcm",
    "reportsi_with_empty_number_tags.dcm": "reportsi.dcm",
    **{name: "badVR.dcm" for name in (
        "rtdose.dcm", "rtdose_1frame.dcm", "rtdose_expb.dcm", "rtdose_expb_1frame.dcm", "rtdose_rle.dcm",
        "rtdose_rle_1frame.dcm")},
    "rtplan_truncated.dcm": "rtplan.dcm",
}
NOT_DICOM = {"no_meta.dcm": "not DICOM: no 'DICM' preamble and no DICOM dataset pydicom can read"}


@pytest.fixture(scope="module")
def export_container(storage_connection_string: str) -> str:
    name = f"cli-export-{uuid.uuid4().hex[:8]}"
    BlobServiceClient.from_connection_string(storage_connection_string).create_container(name)
    return name


@pytest.fixture(scope="module")
def host(storage_connection_string: str, tmp_path_factory: pytest.TempPathFactory) -> Host:
    data = tmp_path_factory.mktemp("cli") / "hub"
    write_keys(data, "cli-test-master-key-0123456789", FUNCTION_KEY, "cli-test-system-key-0123456789")
    env = {
        "AzureWebJobsStorage": storage_connection_string,
        "DicomStore__ContainerName": f"cli-store-{uuid.uuid4().hex[:8]}",
        "DicomServer__Features__EnableExtendedExport": "true",
        "Export__AllowEmulator": "true",
        "Export__SecretKeyFile": str(data.parent / "export.key"),
        # Small batches: several generations per export, and time to cancel one while it runs.
        "Export__BatchSize": "2",
        "Export__MaxParallelBatches": "2",
        "Export__RetryOptions__MaxNumberOfAttempts": "2",
        "Export__RetryOptions__FirstRetryIntervalSeconds": "0.5",
    }
    host = Host(ROOT, data, env=env).start()
    yield host
    host.stop()


def cli(host: Host, *args: str, key: str | None = FUNCTION_KEY, stdin: str | None = None,
        command: tuple[str, ...] = (sys.executable, "-m", "cli")) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, the service and key from the environment."""
    env = {**os.environ, "DICOM_EXPORT_URL": host.base_url, "COLUMNS": "80"}  # reports must not fold at 80
    env.pop("DICOM_EXPORT_KEY", None)
    if key:
        env["DICOM_EXPORT_KEY"] = key
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, input=stdin,
                          timeout=180, check=False)


def grep(pattern: str, text: str) -> str:
    """The lines of `text` holding `pattern`, as `grep -F` finds them through a pipe."""
    found = subprocess.run(["grep", "-F", pattern], input=text, capture_output=True, text=True, check=False)
    return found.stdout


def as_json(result: subprocess.CompletedProcess):
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"not JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}") from None


@pytest.fixture(scope="module")
def loaded(host: Host) -> dict:
    """pydicom's 78 test files, loaded once with `load --json`."""
    result = cli(host, "--json", "load", *map(str, PYDICOM_FILES))
    assert result.returncode == 2, result.stderr  # some files are rejected by the store
    return as_json(result)


@pytest.fixture(scope="module")
def studies(loaded: dict) -> list[str]:
    """The studies now in the store, from the retrieve URLs of what was stored."""
    return sorted({urlsplit(row["url"]).path.split("/studies/")[1].split("/")[0] for row in loaded["stored"]})


def test_pydicom_files_are_stored_identically_or_not_sent_or_rejected_with_the_reason(
        host: Host, loaded: dict) -> None:
    assert len(PYDICOM_FILES) == 78
    named = {kind: {Path(row["path"]).name: row for row in loaded[kind]} for kind in ("stored", "failed", "skipped")}
    assert sum(map(len, named.values())) == 78  # each file exactly once
    assert {name: row["reason"] for name, row in named["failed"].items()} == REJECTED
    assert {name: row["reason"] for name, row in named["skipped"].items()} == {
        **NOT_DICOM,
        **{name: f"same study/series/SOP instance UIDs as {first} (the store keeps one file per instance)"
           for name, first in DUPLICATE_OF.items()},
    }
    assert len(named["stored"]) == 78 - len(REJECTED) - len(NOT_DICOM) - len(DUPLICATE_OF) == 35
    for name, row in named["stored"].items():
        retrieved = requests.get(row["url"], headers={"Accept": "application/dicom", "x-functions-key": FUNCTION_KEY},
                                 timeout=60)
        assert retrieved.status_code == 200, name
        assert retrieved.content == (TEST_FILES / name).read_bytes(), name


def test_load_walks_folders_and_prints_a_summary_with_reasons(host: Host, tmp_path: Path) -> None:
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / "nested" / "deeper" / "IM000001").write_bytes((TEST_FILES / "CT_small.dcm").read_bytes())
    (tmp_path / "copy-of-ct").write_bytes((TEST_FILES / "CT_small.dcm").read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "nested" / "no-study.dcm").write_bytes((TEST_FILES / "JPEGLSNearLossless_08.dcm").read_bytes())
    # The console script, as installed by `make install`.
    result = cli(host, "load", str(tmp_path), command=(str(Path(sys.executable).with_name("dicom-export")),))
    assert result.returncode == 2, result.stderr
    assert "4 files found, 2 to store" in result.stderr
    assert "storing" in result.stderr and "2/2 files" in result.stderr
    out = result.stdout
    assert "1 stored, 1 failed, 2 skipped (1 not DICOM, 1 duplicates)" in out
    assert f"failed\tnested/no-study.dcm\t{NO_STUDY}" in out
    assert "skipped\tnested/deeper/IM000001\tsame study/series/SOP instance UIDs as copy-of-ct" in grep(
        "nested/deeper/IM000001", out)
    assert "notes.txt" in out and "not DICOM" in out
    # Only what is fine: exit 0.
    only_good = cli(host, "load", str(tmp_path / "copy-of-ct"))
    assert only_good.returncode == 0, only_good.stdout + only_good.stderr
    assert "1 stored, 0 failed, 0 skipped" in only_good.stdout


def export_args(storage_connection_string: str, container: str) -> list[str]:
    return ["--connection-string", storage_connection_string, "--container", container]


@pytest.fixture(scope="module")
def finished_with_skip(host: Host, studies: list[str], storage_connection_string: str, export_container: str,
                       tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, subprocess.CompletedProcess]:
    """Every stored study plus one unknown, from a file of identifiers, waited for."""
    listing = tmp_path_factory.mktemp("ids") / "ids.txt"
    listing.write_text("# everything loaded\n" + "\n".join(studies) + f"\n\n# and one that is not there\n{UNKNOWN_STUDY}\n")
    result = cli(host, "--json", "export", "--from-file", str(listing), "--wait", "--interval", "0.2",
                 *export_args(storage_connection_string, export_container))
    return as_json(result), result


def test_export_wait_follows_progress_to_completion_with_one_skip(
        finished_with_skip, loaded: dict, storage_connection_string: str, export_container: str) -> None:
    operation, result = finished_with_skip
    assert result.returncode == 1, result.stderr  # completed, with a skip
    assert operation["status"] == "completed"
    assert operation["results"]["exported"] == len(loaded["stored"]) == 35
    assert operation["results"]["skipped"] == 1
    assert "completed · 35 exported · 1 skipped · " in result.stderr and " files/s · 0:00:" in result.stderr
    container = BlobServiceClient.from_connection_string(storage_connection_string).get_container_client(
        export_container)
    results = [b.name for b in container.list_blobs(name_starts_with=f"{operation['operationId']}/results/")]
    assert len(results) == 35
    assert storage_connection_string not in result.stdout + result.stderr


def test_status_and_wait_of_an_ended_operation_give_its_exit_code(host: Host, finished_with_skip) -> None:
    operation_id = finished_with_skip[0]["operationId"]
    status = cli(host, "status", operation_id)
    assert status.returncode == 1
    for line in (f"operation   {operation_id}", "status      completed", "exported    35", "skipped     1",
                 f"/{operation_id}/errors.log"):
        assert line in status.stdout
    waited = cli(host, "wait", operation_id)
    assert waited.returncode == 1
    assert "completed · 35 exported · 1 skipped" in waited.stderr
    assert as_json(cli(host, "status", operation_id, "--json"))["results"]["skipped"] == 1


def test_errors_prints_the_log_read_with_the_destination_credentials(
        host: Host, finished_with_skip, storage_connection_string: str) -> None:
    operation_id = finished_with_skip[0]["operationId"]
    # The container comes from the errorHref; the connection string gives access.
    table = cli(host, "errors", operation_id, "--connection-string", storage_connection_string)
    assert table.returncode == 0, table.stderr
    assert "(1 line)" in table.stdout
    [line] = grep(UNKNOWN_STUDY, table.stdout).splitlines()
    assert line.split("\t")[1] == UNKNOWN_STUDY and "no instance in the store matches" in line
    [entry] = as_json(cli(host, "errors", operation_id, "--json", "--connection-string", storage_connection_string))
    assert entry["identifier"] == UNKNOWN_STUDY and entry["error"] and entry["timestamp"]
    # Without credentials the private container refuses, and the CLI says so.
    anonymous = cli(host, "errors", operation_id)
    assert anonymous.returncode == 3
    assert "cannot be read without credentials: give the destination as to `export`" in anonymous.stderr


def test_export_without_wait_then_wait_exits_0_when_nothing_is_skipped(
        host: Host, studies: list[str], storage_connection_string: str, export_container: str) -> None:
    started = cli(host, "export", "--study", studies[0], *export_args(storage_connection_string, export_container))
    assert started.returncode == 0, started.stderr
    operation_id = started.stdout.split()[1]
    assert f"dicom-export wait {operation_id}" in started.stdout
    waited = cli(host, "wait", operation_id, "--interval", "0.2")
    assert waited.returncode == 0, waited.stderr
    assert "completed · " in waited.stderr and " · 0 skipped · " in waited.stderr


def test_list_shows_operations_newest_first_and_filters_by_status(host: Host, finished_with_skip) -> None:
    operation_id = finished_with_skip[0]["operationId"]
    table = cli(host, "list")
    assert table.returncode == 0 and operation_id in table.stdout
    completed = as_json(cli(host, "list", "--status", "completed", "--json"))
    assert operation_id in [op["operationId"] for op in completed]
    assert {op["status"] for op in completed} == {"completed"}
    created = [op["createdTime"] for op in completed]
    assert created == sorted(created, reverse=True)
    assert as_json(cli(host, "list", "--status", "canceled,failed", "--json")) == [
        op for op in as_json(cli(host, "list", "--json")) if op["status"] in ("canceled", "failed")]
    # Every export here has been picked up by now: none waits to start.
    assert cli(host, "list", "--status", "notStarted").stdout == "no operations with status notStarted\n"
    refused = cli(host, "list", "--status", "sleeping")
    assert refused.returncode == 3 and "HTTP 400" in refused.stderr and "sleeping" in refused.stderr


@pytest.fixture(scope="module")
def big_study(host: Host, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A study of 600 small instances, loaded with the CLI: an export of it runs for a few seconds."""
    folder = tmp_path_factory.mktemp("big-study")
    study, series = generate_uid(), generate_uid()
    for n in range(1, 601):
        dataset = Dataset()
        dataset.SOPClassUID = SecondaryCaptureImageStorage
        dataset.SOPInstanceUID = f"{series[:50]}.{n}"
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, series
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.save_as(folder / f"{n:04d}", enforce_file_format=True)
    loaded = cli(host, "load", str(folder), "--workers", "8", "--batch-files", "50")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "600 stored, 0 failed, 0 skipped" in loaded.stdout
    return study


def test_cancel_stops_a_running_export_and_wait_exits_2(
        host: Host, big_study: str, finished_with_skip, storage_connection_string: str, export_container: str) -> None:
    started = as_json(cli(host, "--json", "export", "--study", big_study,
                          *export_args(storage_connection_string, export_container)))
    operation_id = started["id"]
    # Cancel once some files are out, so the counts reached can be seen to stay.
    wait_for(lambda: as_json(cli(host, "status", operation_id, "--json"))["results"]["exported"] > 0,
             timeout=60, message="the export's first files")
    canceled = cli(host, "cancel", operation_id)
    assert canceled.returncode == 0, canceled.stderr
    assert f"cancel requested for {operation_id}" in canceled.stdout
    waited = cli(host, "wait", operation_id, "--interval", "0.2")
    assert waited.returncode == 2, waited.stdout + waited.stderr
    assert "canceled · " in waited.stderr and "status      canceled" in waited.stdout
    assert 0 < as_json(cli(host, "status", operation_id, "--json"))["results"]["exported"] < 600
    assert cli(host, "cancel", operation_id).returncode == 0  # canceling again changes nothing
    # A canceled export commits the manifest of the files its counts count; those of the batches the cancel
    # stopped are there too, unlisted: extra, and nothing else wrong.
    verified = cli(host, "verify", operation_id, *export_args(storage_connection_string, export_container))
    exported = as_json(cli(host, "status", operation_id, "--json"))["results"]["exported"]
    assert f"export canceled, {exported:,} files listed: {exported:,} intact, 0 missing, " in verified.stdout, (
        verified.stdout + verified.stderr)
    assert " 0 mismatched" in verified.stdout and "HTTP" not in verified.stderr
    too_late = cli(host, "cancel", finished_with_skip[0]["operationId"])
    assert too_late.returncode == 3 and "HTTP 409" in too_late.stderr and "already completed" in too_late.stderr


def test_ctrl_c_stops_following_but_not_the_export_and_names_the_cancel_command(
        host: Host, big_study: str, storage_connection_string: str, export_container: str) -> None:
    env = {**os.environ, "DICOM_EXPORT_URL": host.base_url, "DICOM_EXPORT_KEY": FUNCTION_KEY}
    following = subprocess.Popen(
        [sys.executable, "-m", "cli", "export", "--study", big_study,
         *export_args(storage_connection_string, export_container), "--wait", "--interval", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C as from a terminal, even when pytest runs as a background job (which ignores SIGINT).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509 - no lock is taken
    started = wait_for(lambda: as_json(cli(host, "list", "--status", "running", "--json")),
                       timeout=60, message="the export to run")
    following.send_signal(signal.SIGINT)
    out, err = following.communicate(timeout=60)
    assert following.returncode == 130, out + err
    operation_id = started[0]["operationId"]
    assert f"interrupted; the export keeps running (`dicom-export cancel {operation_id}` stops it)" in err
    assert as_json(cli(host, "status", operation_id, "--json"))["status"] in ("running", "completed")
    cli(host, "cancel", operation_id)
    assert cli(host, "wait", operation_id, "--interval", "0.2").returncode in (0, 2)

def test_wait_rides_out_a_host_restart(host: Host, big_study: str, storage_connection_string: str,
                                      export_container: str) -> None:
    started = as_json(cli(host, "--json", "export", "--study", big_study,
                          *export_args(storage_connection_string, export_container)))
    env = {**os.environ, "DICOM_EXPORT_URL": host.base_url, "DICOM_EXPORT_KEY": FUNCTION_KEY}
    answered = "Executed 'Functions.v1_get_operation' (Succeeded"
    polls = host.log().count(answered)
    waiting = subprocess.Popen([sys.executable, "-m", "cli", "wait", started["id"], "--interval", "0.2"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Once `wait` has seen the operation (a first poll must be answered: a wrong URL fails at once). Two polls
    # done on the host: the second is sent only once the first answer arrived (a kill while the first poll
    # ran, as when waiting for it only to start, left `wait` unanswered on a loaded machine) ...
    wait_for(lambda: host.log().count(answered) > polls + 1, timeout=30, message="the first polls answered")
    host.kill()  # as a crash: the export resumes from the task hub when the host is back
    host.start()
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, out + err
    assert "completed · 600 exported · 0 skipped" in err


def test_idempotency_key_returns_the_same_operation(
        host: Host, studies: list[str], storage_connection_string: str, export_container: str) -> None:
    key = f"cli-test-{uuid.uuid4().hex}"
    args = ["--json", "export", "--study", studies[0], "--idempotency-key", key,
            *export_args(storage_connection_string, export_container)]
    first, second = as_json(cli(host, *args)), as_json(cli(host, *args))
    assert first["id"] == second["id"]
    wait_for(lambda: cli(host, "status", first["id"], "--json").returncode == 0 and as_json(
        cli(host, "status", first["id"], "--json"))["status"] == "completed", timeout=60, message="export to end")
    other = cli(host, "export", "--study", studies[1], "--idempotency-key", key,
                *export_args(storage_connection_string, export_container))
    assert other.returncode == 3 and "HTTP 422" in other.stderr


def test_requests_the_service_refuses_exit_3_with_its_reason_and_no_secret(host: Host, export_container: str) -> None:
    bad_uid = cli(host, "export", "--study", "1.2.abc", "--connection-string", "UseDevelopmentStorage=true",
                  "--container", export_container)
    assert bad_uid.returncode == 3 and "HTTP 400" in bad_uid.stderr and "1.2.abc" in bad_uid.stderr
    account_key = "c2VjcmV0LWFjY291bnQta2V5LW5ldmVyLXRvLWJlLXByaW50ZWQ="
    real_account = cli(host, "export", "--study", "1.2", "--connection-string",
                       f"DefaultEndpointsProtocol=https;AccountName=someone;AccountKey={account_key};"
                       "EndpointSuffix=core.windows.net", "--container", "export")
    assert real_account.returncode == 3 and "HTTP 400" in real_account.stderr
    assert account_key not in real_account.stdout + real_account.stderr
    assert cli(host, "status", "0" * 32).returncode == 3
    partition = cli(host, "export", "--partition", "a", "--study", "1.2", "--connection-string",
                    "UseDevelopmentStorage=true", "--container", export_container)
    assert partition.returncode == 3 and "HTTP 400" in partition.stderr and "store is blob" in partition.stderr


def test_a_wrong_or_missing_key_is_a_connection_error_not_a_failed_load(host: Host) -> None:
    for key in ("not-the-key", None):
        listed = cli(host, "list", key=key)
        assert listed.returncode == 3 and "HTTP 401" in listed.stderr
        assert "not-the-key" not in listed.stderr
        loading = cli(host, "load", str(TEST_FILES / "CT_small.dcm"), key=key)
        assert loading.returncode == 3 and "HTTP 401" in loading.stderr
    with_flag = cli(host, "--key", FUNCTION_KEY, "list", key=None)
    assert with_flag.returncode == 0 and FUNCTION_KEY not in with_flag.stdout + with_flag.stderr


def test_a_container_uri_with_sas_exports_and_reads_errors_without_printing_the_signature(
        host: Host, studies: list[str], storage_connection_string: str, export_container: str) -> None:
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    sas = generate_container_sas(
        service.account_name, export_container, account_key=service.credential.account_key,
        permission=ContainerSasPermissions(read=True, write=True, create=True, add=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1))
    uri = f"{service.get_container_client(export_container).url}?{sas}"
    signatures = (parse_qs(sas)["sig"][0], sas.split("sig=")[1].split("&")[0])  # decoded, as sent
    exported = cli(host, "export", "--study", studies[0], "--instance", f"{UNKNOWN_STUDY}/1.2/1.2.3",
                   "--container-uri", uri, "--wait", "--interval", "0.2")
    assert exported.returncode == 1, exported.stderr
    operation_id = exported.stderr.split()[1]  # "export <id> started"
    errors = cli(host, "errors", operation_id, "--container-uri", uri)
    assert errors.returncode == 0, errors.stderr
    assert f"{UNKNOWN_STUDY}/1.2/1.2.3" in errors.stdout
    verified = cli(host, "verify", operation_id, "--container-uri", uri)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for result in (exported, errors, verified):
        assert not any(secret in result.stdout + result.stderr for secret in signatures)


def test_verify_passes_an_intact_export_then_names_a_tampered_a_deleted_and_an_extra_file(
        host: Host, finished_with_skip, storage_connection_string: str, export_container: str,
        tmp_path: Path) -> None:
    """Last in this module: it alters the files of the shared export."""
    operation_id = finished_with_skip[0]["operationId"]
    destination = export_args(storage_connection_string, export_container)
    intact = cli(host, "verify", operation_id, *destination)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert "35 files listed: 35 intact, 0 missing, 0 extra, 0 mismatched: every file intact" in intact.stdout
    assert "verifying" in intact.stderr and "35/35 files" in intact.stderr  # the progress bar
    container = BlobServiceClient.from_connection_string(storage_connection_string).get_container_client(
        export_container)
    # The manifest is sha256sum's format: a downloaded copy of <op>/ checks with `sha256sum -c`.
    for blob in container.list_blobs(name_starts_with=f"{operation_id}/"):
        local = tmp_path / blob.name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(container.download_blob(blob.name).readall())
    checked = subprocess.run(["sha256sum", "--strict", "-c", "manifest-sha256.txt"], cwd=tmp_path / operation_id,
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and checked.stdout.count(": OK\n") == 35, checked.stdout + checked.stderr

    tampered, deleted, *_ = sorted(b.name for b in container.list_blobs(name_starts_with=f"{operation_id}/results/"))
    container.upload_blob(tampered, b"not the exported bytes", overwrite=True)
    container.delete_blob(deleted)
    extra = f"{operation_id}/results/1.2/1.2.3/1.2.3.4.dcm"
    container.upload_blob(extra, b"a file the export never wrote")

    problems = cli(host, "verify", operation_id, *destination)
    assert problems.returncode == 2, problems.stdout + problems.stderr
    assert "35 files listed: 33 intact, 1 missing, 1 extra, 1 mismatched" in problems.stdout
    [line] = grep(tampered.split("/", 1)[1], problems.stdout).splitlines()  # whole, on one line, through a pipe
    kind, path, detail = line.split("\t")
    assert (kind, path) == ("mismatched", tampered.split("/", 1)[1]) and "SHA-256 is " in detail
    assert re.search(r"SHA-256 is [0-9a-f]{64}, the manifest says [0-9a-f]{64}$", detail)
    report = as_json(cli(host, "verify", operation_id, "--json", *destination))
    relative = lambda name: name.split("/", 1)[1]
    assert {(p["kind"], p["path"]) for p in report["problems"]} == {
        ("missing", relative(deleted)), ("extra", relative(extra)), ("mismatched", relative(tampered))}
    assert (report["listed"], report["intact"]) == (35, 33)
    assert storage_connection_string not in problems.stdout + problems.stderr

    # Rewriting a file and its manifest line is caught: the status recorded the manifest's digest.
    name = tampered.split("/", 1)[1]
    data = b"a forged file"
    text = container.download_blob(f"{operation_id}/manifest-sha256.txt").readall().decode()
    forged = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" if line.endswith(f"  {name}") else line + "\n"
                     for line in text.splitlines())
    container.upload_blob(tampered, data, overwrite=True)
    container.upload_blob(f"{operation_id}/manifest-sha256.txt", forged.encode(), overwrite=True)
    fooled = cli(host, "verify", operation_id, *destination)
    assert fooled.returncode == 2, fooled.stdout + fooled.stderr
    [line] = grep("manifest-sha256.txt", fooled.stdout).splitlines()
    assert line.startswith("manifest\tmanifest-sha256.txt\t") and "the manifest was rewritten" in line


def test_pause_shows_in_the_list_resume_and_wait_redirected_prints_progress_lines(
        host: Host, big_study: str, storage_connection_string: str, export_container: str) -> None:
    started = as_json(cli(host, "--json", "export", "--study", big_study,
                          *export_args(storage_connection_string, export_container)))
    operation_id = started["id"]
    wait_for(lambda: as_json(cli(host, "status", operation_id, "--json"))["results"]["exported"] > 0,
             timeout=60, message="the export's first files")
    paused = cli(host, "pause", operation_id)
    assert paused.returncode == 0 and f"pause requested for {operation_id}" in paused.stdout, paused.stderr
    wait_for(lambda: as_json(cli(host, "status", operation_id, "--json"))["status"] == "paused", timeout=60,
             message="paused")
    assert grep(operation_id, cli(host, "list", "--status", "paused").stdout).split()[1] == "paused"
    assert operation_id not in cli(host, "list", "--status", "running").stdout
    assert cli(host, "resume", operation_id).returncode == 0
    # Output redirected (as here: a pipe), --wait prints plain progress lines as it goes, not only the end.
    waited = cli(host, "wait", operation_id, "--interval", "0.2")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    progress = [line for line in waited.stderr.splitlines() if " exported · " in line]
    assert len(progress) >= 2 and progress[-1].startswith("completed · 600 exported"), waited.stderr
    assert "status      completed" in waited.stdout
    too_late = cli(host, "retry", operation_id)
    assert too_late.returncode == 3 and "HTTP 409" in too_late.stderr and "completed" in too_late.stderr


def test_list_pages_newest_first_with_top_and_the_continuation_it_prints(host: Host, finished_with_skip) -> None:
    everything = [op["operationId"] for op in as_json(cli(host, "list", "--all", "--json"))]
    assert len(everything) >= 2
    first = cli(host, "list", "--top", "1")
    assert first.returncode == 0, first.stderr
    more = re.search(r"more: dicom-export list --top 1 --continuation (\S+)", first.stderr)
    assert more and everything[0] in first.stdout
    second = cli(host, "list", "--top", "1", "--continuation", more.group(1))
    assert everything[1] in second.stdout and everything[0] not in second.stdout


def test_from_file_comments_anywhere_and_errors_name_the_file_and_line(
        host: Host, studies: list[str], storage_connection_string: str, export_container: str,
        tmp_path: Path) -> None:
    listing = tmp_path / "ids.txt"
    listing.write_text(f"# studies\n{studies[0]}  # a trailing comment\n1.2.abc\n")
    refused = cli(host, "export", "--from-file", str(listing), *export_args(storage_connection_string,
                                                                              export_container))
    assert refused.returncode == 3 and "HTTP 400" in refused.stderr
    assert f"{listing} line 3" in refused.stderr and "values[0]" not in refused.stderr, refused.stderr
    listing.write_text(f"{studies[0]} # fine\n{studies[1]} and more words\n")
    malformed = cli(host, "export", "--from-file", str(listing), *export_args(storage_connection_string,
                                                                                export_container))
    assert malformed.returncode == 3 and f"{listing} line 2" in malformed.stderr


def test_export_all_creates_the_container_and_exports_the_whole_store(
        host: Host, loaded: dict, storage_connection_string: str) -> None:
    container = f"created-{uuid.uuid4().hex[:8]}"
    started = cli(host, "--json", "export", "--all", "--yes", "--create-container",
                  *export_args(storage_connection_string, container))
    assert started.returncode == 0, started.stderr
    assert "destination container created" in started.stderr
    operation_id = as_json(started)["id"]
    wait_for(lambda: as_json(cli(host, "status", operation_id, "--json"))["results"]["exported"] > 0,
             timeout=60, message="the whole store's first files")
    cli(host, "cancel", operation_id)
    both = cli(host, "export", "--all", "--study", "1.2", "--connection-string", storage_connection_string,
               "--container", container)
    assert both.returncode == 3 and "--all exports the whole store" in both.stderr
