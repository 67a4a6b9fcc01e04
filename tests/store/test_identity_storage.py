"""The built-in store in identity-only host storage (no connection string, no key), as the azd template
deploys it: `AzureWebJobsStorage__blobServiceUri` with `__credential=managedidentity` and `__clientId`, through
azure-identity's ManagedIdentityCredential, against Azurite in its OAuth mode (tests/entra_azurite.py says what
is stood in for: only the platform's token endpoint)."""

from __future__ import annotations

import io
import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.blob import ContainerClient

from shared import credentials
from shared.errors import Misconfigured
from shared.stores.blob.store import DicomStore, host_blob_service_uri
from shared.uids import Identifier
from testkit.instances import make_instance
from tests.entra_azurite import STORAGE, entra_azurite, identity_endpoint  # noqa: F401 - fixtures

CLIENT_ID = "00000000-0000-0000-0000-0000000000cc"


def identity_settings(azurite) -> dict[str, str]:
    return {"AzureWebJobsStorage__blobServiceUri": azurite.blob_endpoint,
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": CLIENT_ID,
            "DicomStore__ContainerName": f"store-{uuid.uuid4().hex[:12]}"}


def test_the_store_stores_lists_and_reads_back_with_the_identity_s_tokens(entra_azurite, identity_endpoint):  # noqa: F811
    store = DicomStore.from_settings(identity_settings(entra_azurite), connection_verify=str(entra_azurite.cert))
    assert isinstance(store.container.credential, ManagedIdentityCredential), "the store must use the identity"

    data = make_instance(study="1.2.3", series="1.2.3.4", sop="1.2.3.4.5")
    store.put("1.2.3", "1.2.3.4", "1.2.3.4.5", io.BytesIO(data), len(data))
    found, cursor = store.list_page(Identifier("1.2.3"))
    assert [(i.study, i.series, i.instance) for i in found] == [("1.2.3", "1.2.3.4", "1.2.3.4.5")] and cursor is None
    assert b"".join(store.download("1.2.3/1.2.3.4/1.2.3.4.5.dcm").chunks()) == data
    # One token, for storage, for the user-assigned identity the settings name (then cached by azure-identity).
    assert identity_endpoint.resources() == {STORAGE}
    assert {r.get("client_id") for r in identity_endpoint.requests} == {CLIENT_ID}


def test_azurite_refuses_a_client_without_a_token_so_the_passing_test_used_its_token(entra_azurite):  # noqa: F811
    anonymous = ContainerClient(entra_azurite.blob_endpoint, "anything", connection_verify=str(entra_azurite.cert))
    with pytest.raises(HttpResponseError) as refused:
        anonymous.create_container()
    assert refused.value.status_code in (401, 403)


def test_a_token_for_another_audience_is_refused(entra_azurite, identity_endpoint):  # noqa: F811
    identity_endpoint.audience = "https://management.azure.com"
    store = DicomStore.from_settings(identity_settings(entra_azurite), connection_verify=str(entra_azurite.cert),
                                     retry_total=0)
    with pytest.raises(HttpResponseError) as refused:
        store.ensure_container()
    assert refused.value.status_code == 403 and "Invalid token audience" in str(refused.value)  # as Azure answers


def test_an_identity_the_app_does_not_have_fails_naming_it_and_falls_back_to_nothing(entra_azurite,  # noqa: F811
                                                                                     identity_endpoint):  # noqa: F811
    identity_endpoint.refuse = True
    settings = identity_settings(entra_azurite)
    store = DicomStore.from_settings(settings, connection_verify=str(entra_azurite.cert), retry_total=0)
    with pytest.raises(ClientAuthenticationError, match="(?i)managed identity"):
        store.ensure_container()
    assert identity_endpoint.requests, "the credential asked the platform"
    identity_endpoint.refuse = False  # nothing was created without a token
    assert not DicomStore.from_settings(settings, connection_verify=str(entra_azurite.cert)).container.exists()


def test_the_host_settings_choose_the_identity_the_way_the_functions_host_does():
    user_assigned = credentials.host_storage_credential(
        {"AzureWebJobsStorage__credential": "managedidentity", "AzureWebJobsStorage__clientId": "abc"})
    assert isinstance(user_assigned, ManagedIdentityCredential)
    assert isinstance(credentials.host_storage_credential({}), DefaultAzureCredential)
    assert host_blob_service_uri({"AzureWebJobsStorage__accountName": "acct"}) == "https://acct.blob.core.windows.net"
    assert host_blob_service_uri({"AzureWebJobsStorage:blobServiceUri": "https://x/"}) == "https://x/"
    with pytest.raises(Misconfigured, match="AzureWebJobsStorage__blobServiceUri"):
        DicomStore.from_settings({})
