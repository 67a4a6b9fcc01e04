"""The built-in store in identity-only host storage (no connection string, no key), as the azd template
deploys it: `AzureWebJobsStorage__blobServiceUri` with `__credential=managedidentity` and `__clientId`,
against Azurite in its OAuth mode with bearer tokens (tests/entra_azurite.py says what is stood in for)."""

from __future__ import annotations

import io
import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.blob import ContainerClient

from shared import credentials
from shared.stores.blob.store import DicomStore, host_blob_service_uri
from shared.stores.interface import StoreMisconfigured
from shared.uids import Identifier
from tests.entra_azurite import STORAGE_SCOPE, EntraTokens, entra_azurite  # noqa: F401 - the fixture
from tests.store.instances import make_instance


def identity_settings(azurite) -> dict[str, str]:
    return {"AzureWebJobsStorage__blobServiceUri": azurite.blob_endpoint,
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-0000000000cc",
            "DicomStore__ContainerName": f"store-{uuid.uuid4().hex[:12]}"}


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> EntraTokens:
    issued = EntraTokens()
    asked: list[dict] = []
    monkeypatch.setattr(credentials, "host_storage_credential", lambda env=None: asked.append(dict(env or {})) or issued)
    issued.asked_with = asked  # type: ignore[attr-defined]
    return issued


def test_the_store_stores_lists_and_reads_back_with_bearer_tokens_only(entra_azurite, tokens):  # noqa: F811
    env = identity_settings(entra_azurite)
    store = DicomStore.from_settings(env, connection_verify=str(entra_azurite.cert))
    assert store.container.credential is tokens, "the store must use the identity, never a key"

    data = make_instance(study="1.2.3", series="1.2.3.4", sop="1.2.3.4.5")
    store.put("1.2.3", "1.2.3.4", "1.2.3.4.5", io.BytesIO(data), len(data))
    found, cursor = store.list_page(Identifier("1.2.3"))
    assert [(i.study, i.series, i.instance) for i in found] == [("1.2.3", "1.2.3.4", "1.2.3.4.5")] and cursor is None
    assert b"".join(store.download("1.2.3/1.2.3.4/1.2.3.4.5.dcm").chunks()) == data
    assert tokens.scopes and set(tokens.scopes) == {(STORAGE_SCOPE,)}


def test_azurite_refuses_a_client_without_a_token_so_the_passing_test_used_its_token(entra_azurite):  # noqa: F811
    anonymous = ContainerClient(entra_azurite.blob_endpoint, "anything", connection_verify=str(entra_azurite.cert))
    with pytest.raises(HttpResponseError) as refused:
        anonymous.create_container()
    assert refused.value.status_code in (401, 403)


def test_a_token_for_another_audience_is_refused(entra_azurite, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    wrong = EntraTokens(audience="https://management.azure.com")
    monkeypatch.setattr(credentials, "host_storage_credential", lambda env=None: wrong)
    store = DicomStore.from_settings(identity_settings(entra_azurite), connection_verify=str(entra_azurite.cert),
                                     retry_total=0)
    with pytest.raises(HttpResponseError) as refused:
        store.ensure_container()
    assert refused.value.status_code == 403 and "Invalid token audience" in str(refused.value)  # as Azure answers


def test_no_token_means_no_request(entra_azurite, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    class NoIdentity:
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("ManagedIdentityCredential authentication unavailable")

    monkeypatch.setattr(credentials, "host_storage_credential", lambda env=None: NoIdentity())
    store = DicomStore.from_settings(identity_settings(entra_azurite), connection_verify=str(entra_azurite.cert),
                                     retry_total=0)
    with pytest.raises(ClientAuthenticationError, match="unavailable"):
        store.ensure_container()


def test_the_host_settings_choose_the_identity_the_way_the_functions_host_does():
    user_assigned = credentials.host_storage_credential(
        {"AzureWebJobsStorage__credential": "managedidentity", "AzureWebJobsStorage__clientId": "abc"})
    assert isinstance(user_assigned, ManagedIdentityCredential)
    assert isinstance(credentials.host_storage_credential({}), DefaultAzureCredential)
    assert host_blob_service_uri({"AzureWebJobsStorage__accountName": "acct"}) == "https://acct.blob.core.windows.net"
    assert host_blob_service_uri({"AzureWebJobsStorage:blobServiceUri": "https://x/"}) == "https://x/"
    with pytest.raises(StoreMisconfigured, match="AzureWebJobsStorage__blobServiceUri"):
        DicomStore.from_settings({})
