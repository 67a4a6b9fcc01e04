"""The starter's and activities' steps against Azurite: errors.log first, then batches, then copies."""

from __future__ import annotations

import hashlib
import json

import pytest

from orchestrations.export import COMMIT, COPY, EXPAND
from shared.deid.profile import Profile
from shared.errors import CopyFailed
from shared.export import steps as export_steps
from shared.export.checkpoint import Checkpoint
from shared.export.destination import DestinationRefused
from shared.export.request import ExportRequest
from shared.export.work import CommitWork, CopyWork, ExpandWork
from shared.uids import Identifier

from . import orchestrating
from .conftest import POLICY, put_series

OPERATION = "fedcba9876543210fedcba9876543210"


def test_prepare_creates_an_empty_errors_log_and_a_checkpoint_without_secrets(destination):
    checkpoint = export_steps.prepare(ExportRequest((Identifier("1.2"),), destination), OPERATION, POLICY)

    client = destination.container_client()
    log = client.get_blob_client(f"{OPERATION}/errors.log")
    assert log.get_blob_properties().blob_type == "BlockBlob" and log.download_blob().readall() == b""
    assert checkpoint.error_href == f"{destination.container_url}/{OPERATION}/errors.log"
    assert checkpoint.created_time.endswith("Z")
    text = json.dumps(checkpoint.to_json())
    assert destination.account_key not in text
    assert Checkpoint.from_json(json.loads(text)) == checkpoint


def test_prepare_refuses_a_missing_container_naming_container_and_account(destination):
    destination.container_client().delete_container()
    with pytest.raises(DestinationRefused) as refused:
        export_steps.prepare(ExportRequest((Identifier("1.2"),), destination), OPERATION, POLICY)
    assert str(refused.value) == (
        f"destination: container '{destination.container}' in storage account 'devstoreaccount1' does not exist")


def test_prepare_refuses_an_unreachable_account_in_seconds(destination):
    from dataclasses import replace
    from time import monotonic

    from devhost.azurite import free_port

    gone = replace(destination, account_url=f"http://127.0.0.1:{free_port()}/devstoreaccount1")
    started = monotonic()
    with pytest.raises(DestinationRefused, match="storage account 'devstoreaccount1' is unreachable"):
        export_steps.prepare(ExportRequest((Identifier("1.2"),), gone), OPERATION, POLICY)
    assert monotonic() - started < 30


def test_one_generation_through_the_steps(store, destination):
    stored = put_series(store, "1.2", "1.2.3", 5)
    checkpoint = export_steps.prepare(
        ExportRequest((Identifier("1.2"), Identifier("4.4")), destination), OPERATION, POLICY)

    expansion = export_steps.expand_step(checkpoint.expand_input(), store)
    copies = [export_steps.copy_step(checkpoint.copy_input(batch, n), store)
              for n, batch in enumerate(expansion.batches)]
    after = checkpoint.advance(expansion, copies)

    assert (after.exported, after.skipped, after.done, after.generation) == (5, 1, True, 2)
    client = destination.container_client()
    for name, data in stored.items():
        assert client.download_blob(f"{OPERATION}/results/{name}").readall() == data
    lines = client.download_blob(f"{OPERATION}/errors.log").readall().decode().splitlines()
    assert [json.loads(line)["identifier"] for line in lines] == ["4.4"]
    assert json.loads(lines[0])["error"] == "no instance in the store matches this identifier"


@pytest.mark.parametrize("run_generations,runs", [(1, 3), (8, 1)])
def test_generations_listed_ahead_copy_everything_once_and_count_unknowns_once(store, destination, monkeypatch,
                                                                               run_generations, runs):
    """The orchestrator lists the next generation while the window copies (Checkpoint.prefetched across runs)."""
    from dataclasses import replace

    from orchestrations import export

    monkeypatch.setattr(export, "RUN_GENERATIONS", run_generations)

    stored = put_series(store, "1.2", "1.2.3", 5)
    checkpoint = export_steps.prepare(
        ExportRequest((Identifier("1.2"), Identifier("4.4")), destination), OPERATION, POLICY)
    checkpoint = replace(checkpoint, batching=replace(checkpoint.batching, batch_size=2, max_parallel_batches=1))

    activities = {  # the real orchestrator, fed built histories, calls the real steps
        EXPAND: lambda work: export_steps.expand_step(ExpandWork.from_json(work), store).to_json(),
        COPY: lambda work: export_steps.copy_step(CopyWork.from_json(work), store).to_json(),
        COMMIT: lambda work: export_steps.commit_step(CommitWork.from_json(work)).to_json(),
    }
    last, ran = orchestrating.run(checkpoint, activities)
    done = last.state["output"]

    assert (done["exported"], done["skipped"], ran) == (5, 1, runs)  # 2 + 2 + (1 and 4.4 unknown)
    client = destination.container_client()
    assert sorted(b.name for b in client.list_blobs(name_starts_with=f"{OPERATION}/results/")) == sorted(
        f"{OPERATION}/results/{name}" for name in stored)
    lines = client.download_blob(f"{OPERATION}/errors.log").readall().decode().splitlines()
    assert [json.loads(line)["identifier"] for line in lines] == ["4.4"]

    assert done["manifestHref"] == f"{destination.container_url}/{OPERATION}/manifest-sha256.txt"
    manifest = client.download_blob(f"{OPERATION}/manifest-sha256.txt").readall().decode()
    assert (done["manifestSha256"], done["manifestSize"]) == (hashlib.sha256(manifest.encode()).hexdigest(),
                                                              len(manifest.encode()))  # the digest reaches the status
    # one line per file, in the order the generations exported them, as sha256sum writes it
    assert manifest == "".join(f"{hashlib.sha256(stored[name]).hexdigest()}  results/{name}\n"
                               for name in sorted(stored))


def test_a_deidentification_key_changed_during_the_export_fails_the_copies(store, destination, monkeypatch):
    monkeypatch.setenv("Export__Deidentification__Key", "the key at the start")
    put_series(store, "1.2", "1.2.3", 1)
    checkpoint = export_steps.prepare(ExportRequest((Identifier("1.2"),), destination, Profile()), OPERATION, POLICY)
    assert "the key at the start" not in json.dumps(checkpoint.to_json())
    expansion = export_steps.expand_step(checkpoint.expand_input(), store)

    monkeypatch.setenv("Export__Deidentification__Key", "another key")
    with pytest.raises(CopyFailed, match="Export__Deidentification__Key changed since this export started"):
        export_steps.copy_step(checkpoint.copy_input(expansion.batches[0], 0), store)


def test_a_request_without_source_exports_the_whole_blob_store_in_bounded_generations(store, destination):
    from dataclasses import replace

    stored = {**put_series(store, "1.2", "1.2.3", 3), **put_series(store, "4.5", "4.5.6", 4)}
    checkpoint = export_steps.prepare(ExportRequest((), destination), OPERATION, POLICY)
    checkpoint = replace(checkpoint, batching=replace(checkpoint.batching, batch_size=2, max_parallel_batches=1))
    assert checkpoint.identifiers == ("*",)

    generations = 0
    while not checkpoint.done:
        expansion = export_steps.expand_step(checkpoint.expand_input(), store)
        assert sum(len(batch) for batch in expansion.batches) <= 2
        copies = [export_steps.copy_step(checkpoint.copy_input(batch, n), store)
                  for n, batch in enumerate(expansion.batches)]
        checkpoint = checkpoint.advance(expansion, copies)
        generations += 1

    assert (checkpoint.exported, checkpoint.skipped, generations) == (7, 0, 4)
    client = destination.container_client()
    for name, data in stored.items():
        assert client.download_blob(f"{OPERATION}/results/{name}").readall() == data
    assert client.download_blob(f"{OPERATION}/errors.log").readall() == b""  # an empty store misses nothing


def logged(destination) -> list[str]:
    data = destination.container_client().download_blob(f"{OPERATION}/errors.log").readall().decode()
    return [json.loads(line)["identifier"] for line in data.splitlines()]


def test_a_batch_or_listing_run_again_leaves_its_errors_log_lines_once(store, destination):
    """A retried activity, a crash replay or a retry in place runs a batch again: its lines replace themselves."""
    put_series(store, "1.2", "1.2.3", 4)
    checkpoint = export_steps.prepare(
        ExportRequest((Identifier("1.2"), Identifier("4.4")), destination), OPERATION, POLICY)
    expansion = export_steps.expand_step(checkpoint.expand_input(), store)
    export_steps.expand_step(checkpoint.expand_input(), store)  # the listing again: 4.4 is still not found
    assert logged(destination) == ["4.4"]

    batch = expansion.batches[0]
    for name in [instance[0] for instance in batch]:
        store.container.delete_blob(name)  # gone since listed: each is skipped with a line
    first = export_steps.copy_step(checkpoint.copy_input(batch, 0), store)
    assert logged(destination) == ["4.4", *(n[0][: -len(".dcm")] for n in batch)]  # readable at once
    again = export_steps.copy_step(checkpoint.copy_input(batch, 0), store)
    assert first == again and logged(destination) == ["4.4", *(n[0][: -len(".dcm")] for n in batch)]


def test_batches_writing_at_once_each_leave_their_lines_once(destination):
    from concurrent.futures import ThreadPoolExecutor

    from shared.export.errors_log import ErrorEntry, ErrorLog, batch_key

    client = destination.container_client()
    ErrorLog(client, OPERATION).create()
    writes = [(batch_key(1, n), [ErrorEntry(f"1.2/1.3/{n}.{k}", "gone") for k in range(3)]) for n in range(12)]
    with ThreadPoolExecutor(6) as pool:  # commits race: each is made on the ETag it read, and tried again
        list(pool.map(lambda w: ErrorLog(client, OPERATION).write(*w), writes + writes[:6]))
    assert sorted(logged(destination)) == sorted(e.identifier for _, entries in writes for e in entries)


def test_a_log_made_as_an_append_blob_by_an_earlier_version_is_appended_to(destination):
    from shared.export.errors_log import ErrorEntry, ErrorLog

    client = destination.container_client()
    client.get_blob_client(f"{OPERATION}/errors.log").create_append_blob()
    ErrorLog(client, OPERATION).write("batch 1 0", [ErrorEntry("1.2", "gone")])
    assert logged(destination) == ["1.2"]
