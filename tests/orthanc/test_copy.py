"""The export's steps over the DICOMweb store: the same error policy as the blob store's."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from shared.export import steps as export_steps
from shared.export.destination import parse_destination
from shared.export.request import ExportRequest
from shared.export.settings import ExportSettings
from shared.stores.factory import open_store
from shared.uids import Identifier
from testkit.orthanc import Orthanc

from .conftest import make_study

OPERATION = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


@pytest.fixture
def destination(storage_connection_string: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("Export__AllowEmulator", "true")
    found = parse_destination(ExportSettings(allow_emulator=True), connection_string=storage_connection_string,
                              container_name=f"dest-{uuid.uuid4().hex[:12]}")
    found.container_client().create_container()
    yield found
    found.container_client().delete_container()


def test_an_instance_deleted_after_listing_is_skipped_and_logged(orthanc: Orthanc, destination):
    made = make_study(series=1, instances=4)
    orthanc.stow(*made.values())
    study = next(iter(made)).split("/")[0]
    store = open_store(orthanc.app_settings())
    checkpoint = export_steps.prepare(ExportRequest((Identifier(study),), destination), OPERATION,
                                      ExportSettings(allow_emulator=True))
    expansion = export_steps.expand_step(checkpoint.expand_input(), store)
    gone = expansion.batches[0][0][0]  # the first instance's path
    found = requests.post(f"{orthanc.url}/tools/find", auth=orthanc.auth, timeout=30, json={
        "Level": "Instance", "Query": {"SOPInstanceUID": gone.split("/")[2][:-4]}}).json()
    requests.delete(f"{orthanc.url}/instances/{found[0]}", auth=orthanc.auth, timeout=30).raise_for_status()

    copies = [export_steps.copy_step(checkpoint.copy_input(batch, n), store)
              for n, batch in enumerate(expansion.batches)]

    assert sum(c.exported for c in copies) == 3 and sum(c.skipped for c in copies) == 1
    client = destination.container_client()
    lines = [json.loads(line) for line in client.download_blob(f"{OPERATION}/errors.log").readall().splitlines()]
    assert [line["identifier"] for line in lines] == [gone[:-4]]
    assert "deleted or replaced" in lines[0]["error"]
    for name, data in made.items():
        if name != gone:
            assert client.download_blob(f"{OPERATION}/results/{name}").readall() == data


def test_a_de_identified_export_from_orthanc_leaves_no_original_uid(orthanc: Orthanc, destination, monkeypatch):
    from shared.deid.profile import Profile

    monkeypatch.setenv("Export__Deidentification__Key", "a test key for the orthanc export")
    made = make_study(series=2, instances=2)
    orthanc.stow(*made.values())
    study = next(iter(made)).split("/")[0]
    store = open_store(orthanc.app_settings())
    checkpoint = export_steps.prepare(ExportRequest((Identifier(study),), destination, Profile()), OPERATION,
                                      ExportSettings(allow_emulator=True))
    expansion = export_steps.expand_step(checkpoint.expand_input(), store)
    copies = [export_steps.copy_step(checkpoint.copy_input(batch, n), store)
              for n, batch in enumerate(expansion.batches)]

    assert sum(c.exported for c in copies) == len(made)
    client = destination.container_client()
    written = [client.download_blob(b.name).readall() for b in client.list_blobs(name_starts_with=f"{OPERATION}/results/")]
    originals = {uid for name in made for uid in name[:-4].split("/")}
    assert len(written) == len(made)
    assert not any(uid.encode() in data for uid in originals for data in written)
