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
