"""Azurite in its OAuth mode (`--oauth basic` over HTTPS, with a self-signed certificate made here), and a
credential that hands out Entra-shaped bearer tokens, so managed-identity paths are tried with real tokens.

A managed identity cannot exist on this machine, so `EntraTokens` stands in for azure-identity's credential
(the guide allows mocking only that). Its tokens are what Entra would issue for the scope asked: the audience
is the scope's resource. Azurite checks issuer, audience and lifetime (not the signature, which needs Entra's
keys), so a wrong scope, a missing token, or a client that sends no token at all is refused as in Azure.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devhost.azurite import Azurite, free_port

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
STORAGE_SCOPE = "https://storage.azure.com/.default"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer_token(audience: str, lifetime: int = 3600) -> str:
    """A JWT shaped as Entra issues one to a managed identity (unsigned: Azurite's basic mode checks no signature)."""
    now = int(time.time())
    claims = {"aud": audience, "iss": f"https://sts.windows.net/{TENANT}/", "iat": now - 60, "nbf": now - 60,
              "exp": now + lifetime, "oid": "00000000-0000-0000-0000-0000000000aa", "tid": TENANT,
              "appid": "00000000-0000-0000-0000-0000000000bb", "idtyp": "app"}
    header = {"alg": "RS256", "typ": "JWT"}
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(b"not-signed")])


@dataclass
class EntraTokens:
    """A TokenCredential whose tokens carry the audience of the scope asked (or `audience`, to get it wrong)."""

    audience: str | None = None
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        resource = scopes[0].removesuffix("/.default")
        return AccessToken(bearer_token(self.audience or resource), int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options=None):  # azure-core prefers this when present
        from azure.core.credentials import AccessTokenInfo

        token = self.get_token(*scopes)
        return AccessTokenInfo(token.token, token.expires_on)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in `folder`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def entra_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite over HTTPS that takes bearer tokens; its certificate is `azurite.cert` (pass it as connection_verify)."""
    folder = tmp_path_factory.mktemp("entra-azurite")
    cert, key = self_signed_certificate(folder)
    azurite = Azurite(folder / "data", free_port(), log_path=folder / "azurite.log", cert=cert, key=key,
                      oauth=True).start()
    try:
        yield azurite
    finally:
        azurite.stop()
