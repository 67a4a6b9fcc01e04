"""Azure AD credentials for managed identity, built in one place so tests can swap them."""

from __future__ import annotations

from collections.abc import Mapping

from azure.core.credentials import TokenCredential

from shared import settings


def managed_identity_credential(env: Mapping[str, str] | None = None) -> TokenCredential:
    """ManagedIdentityCredential for `ManagedIdentity__ClientId` when set, else DefaultAzureCredential."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = settings.get("ManagedIdentity__ClientId", None, env)
    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()


def host_storage_credential(env: Mapping[str, str] | None = None) -> TokenCredential:
    """The credential of the host's identity-based storage connection, read as the Functions host reads it:
    `AzureWebJobsStorage__credential=managedidentity` (with `__clientId` for a user-assigned identity) is a
    managed identity; without it, DefaultAzureCredential (a developer's own sign-in)."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    kind = (settings.get("AzureWebJobsStorage__credential", None, env) or "").strip().lower()
    if kind == "managedidentity":
        return ManagedIdentityCredential(client_id=settings.get("AzureWebJobsStorage__clientId", None, env) or None)
    return DefaultAzureCredential()
