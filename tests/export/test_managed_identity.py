"""Managed identity destinations. A managed identity cannot exist on this machine: where a request is sent,
azure-identity's own credential gets its token from a stand-in for the platform's token endpoint and sends it to
Azurite in its OAuth mode (tests/entra_azurite.py), which refuses a wrong or missing one. The tests that send
nothing use a fake credential (stated here as the guide asks)."""

from __future__ import annotations

import json

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from shared import credentials
from shared.errors import ClientError
from shared.export.destination import destination_problem, parse_destination
from shared.export.request import parse_export_request
from shared.export.settings import ExportSettings
from tests.entra_azurite import STORAGE, entra_azurite, identity_endpoint  # noqa: F401 - fixtures


class FakeManagedIdentity:
    """Hands out a dummy token and records which scopes it was asked for."""

    def __init__(self):
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("fake-token", 4_000_000_000)


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> FakeManagedIdentity:
    fake = FakeManagedIdentity()
    monkeypatch.setattr(credentials, "managed_identity_credential", lambda env=None: fake)
    return fake


def test_a_managed_identity_destination_writes_with_the_identity_s_token(entra_azurite, identity_endpoint):  # noqa: F811
    destination = parse_destination(ExportSettings(allow_emulator=True),
                                    container_uri=f"{entra_azurite.blob_endpoint}/export", use_managed_identity=True)
    assert destination.sas is None and destination.account_key is None
    assert destination.protected()["secret"] is None  # nothing to protect: the identity is the app's own

    client = destination.container_client({"ManagedIdentity__ClientId": "client-1"},
                                          connection_verify=str(entra_azurite.cert), retry_total=0)
    client.create_container()
    client.upload_blob("op/results/1.dcm", b"DICM")  # Azurite (OAuth mode) accepts it only with a valid token
    assert client.download_blob("op/results/1.dcm").readall() == b"DICM"
    assert identity_endpoint.resources() == {STORAGE}
    assert {r.get("client_id") for r in identity_endpoint.requests} == {"client-1"}


def test_managed_identity_tokens_only_go_to_allowed_https_endpoints(identity):
    for uri in ("https://attacker.example.com/export", "http://acct.blob.core.windows.net/export"):
        body = {"source": {"type": "identifiers", "settings": {"values": ["1.2"]}},
                "destination": {"type": "azureblob", "settings": {"blobContainerUri": uri, "useManagedIdentity": True}}}
        with pytest.raises(ClientError):
            parse_export_request(json.dumps(body).encode(), "application/json", ExportSettings())
    assert identity.scopes == []


def test_the_client_id_setting_selects_a_user_assigned_identity():
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    assert isinstance(credentials.managed_identity_credential({"ManagedIdentity__ClientId": "abc"}),
                      ManagedIdentityCredential)
    assert isinstance(credentials.managed_identity_credential({}), DefaultAzureCredential)


def test_an_identity_that_gets_no_token_is_named_as_the_reason(monkeypatch: pytest.MonkeyPatch):
    class NoIdentity:
        def get_token(self, *scopes: str, **kwargs) -> AccessToken:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    monkeypatch.setattr(credentials, "managed_identity_credential", lambda env=None: NoIdentity())
    destination = parse_destination(ExportSettings(), container_uri="https://acct.blob.core.windows.net/export",
                                    use_managed_identity=True)
    with pytest.raises(ClientAuthenticationError) as raised:
        destination.container_client(retry_total=0).get_container_properties()

    assert destination_problem(raised.value, destination) == (
        "managed identity could not get a token for container 'export' in storage account 'acct': "
        "DefaultAzureCredential failed to retrieve a token")
