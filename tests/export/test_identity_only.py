"""The app with identity-only settings, as the azd template deploys it: no AzureWebJobsStorage connection string
and no key anywhere. The host's storage is `AzureWebJobsStorage__blobServiceUri` with a user-assigned identity,
the destination is `useManagedIdentity`, and every storage request carries a bearer token that azure-identity's
ManagedIdentityCredential got, inside the app's worker, from the platform's token endpoint (stood in for by
tests/entra_azurite.py, the one thing that cannot exist here) and that Azurite's OAuth mode checks.

devhost keeps its task hub in SQLite, so the Durable extension's own identity-based queues and tables are
not tried here: Azurite's OAuth mode is used for the blob service only.
"""

from __future__ import annotations

import uuid

import pytest
from azure.identity import ManagedIdentityCredential
from azure.storage.blob import ContainerClient
from cryptography.fernet import Fernet

from shared.stores.blob.store import DicomStore
from testkit.exporting import EXPORT_SETTINGS, export_body, finished, results, start
from testkit.host import ROOT, Host
from testkit.seed import put_study
from tests.entra_azurite import STORAGE, entra_azurite, identity_endpoint  # noqa: F401 - fixtures

CLIENT_ID = "00000000-0000-0000-0000-0000000000dd"


def test_an_export_runs_end_to_end_on_identity_only_settings(entra_azurite, identity_endpoint, tmp_path,  # noqa: F811
                                                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)  # `make test` sets it for the other tests
    verify = str(entra_azurite.cert)
    settings = {
        "AzureWebJobsStorage__blobServiceUri": entra_azurite.blob_endpoint,
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": CLIENT_ID,
        "DicomStore__ContainerName": f"store-{uuid.uuid4().hex[:10]}",
    }
    store = DicomStore.from_settings(settings, connection_verify=verify)
    study, stored = put_study(store, 6)
    destination = ContainerClient(entra_azurite.blob_endpoint, f"dest-{uuid.uuid4().hex[:10]}",
                                  credential=ManagedIdentityCredential(client_id=CLIENT_ID), connection_verify=verify)
    destination.create_container()
    identity_endpoint.requests.clear()

    host = Host(ROOT, tmp_path / "hub", env={
        **EXPORT_SETTINGS, **settings, **identity_endpoint.env,
        "ManagedIdentity__ClientId": CLIENT_ID,
        "Export__SecretKey": Fernet.generate_key().decode(),
        "REQUESTS_CA_BUNDLE": verify,  # the worker trusts the test's Azurite certificate, as it trusts Azure's
    }).start()
    try:
        operation = start(host, export_body([study], blobContainerUri=destination.url, useManagedIdentity=True))
        status = finished(operation["href"])
    finally:
        host.stop()
    asked = list(identity_endpoint.requests)  # before this test reads the destination with its own credential

    assert status["status"] == "completed", status
    assert status["results"]["exported"] == len(stored) and status["results"]["skipped"] == 0
    assert results(destination, operation["id"]) == stored
    # The worker asked the platform for storage tokens, always for the deployment's user-assigned identity.
    assert asked, "the app's worker never asked for a token"
    assert {(r["resource"], r.get("client_id")) for r in asked} == {(STORAGE, CLIENT_ID)}
