"""Azurite in its OAuth mode (`--oauth basic` over HTTPS, with a self-signed certificate made here), and the
platform's managed-identity endpoint, so managed-identity paths run azure-identity's own ManagedIdentityCredential
with real bearer tokens.

A managed identity cannot exist on this machine, so `IdentityEndpoint` plays the part of the Functions platform's
local token endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER, the App Service protocol that azure-identity speaks
there); that endpoint is all that is stood in for. Its tokens are what Entra would issue for the resource asked:
the audience is that resource. Azurite checks issuer, audience and lifetime (not the signature, which needs
Entra's keys), so a wrong scope, a missing token, or a client that sends no token at all is refused as in Azure.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devhost.azurite import Azurite, free_port

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
STORAGE = "https://storage.azure.com"  # the resource a storage token is for


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
class IdentityEndpoint:
    """The platform's managed-identity endpoint on a free loopback port: GET ?resource=&api-version=2019-08-01
    [&client_id=] with the X-IDENTITY-HEADER secret gives a token for `resource` (or for `audience`, to get it
    wrong); `refuse` makes it answer 400 as for an identity the app does not have. `requests` records each ask."""

    audience: str | None = None
    refuse: bool = False
    secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    requests: list[dict[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def env(self) -> dict[str, str]:
        """The settings the platform gives the app so azure-identity finds this endpoint."""
        assert self.server
        return {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{self.server.server_port}/msi/token",
                "IDENTITY_HEADER": self.secret}

    def start(self) -> IdentityEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                endpoint.requests.append({**query, "header": self.headers.get("X-IDENTITY-HEADER", "")})
                if endpoint.refuse or self.headers.get("X-IDENTITY-HEADER") != endpoint.secret:
                    return self._send(400, {"error": "invalid_request",
                                            "error_description": "Unable to load the proper Managed Identity."})
                resource = query["resource"]
                self._send(200, {"access_token": bearer_token(endpoint.audience or resource),
                                 "expires_on": str(int(time.time()) + 3600), "resource": resource,
                                 "token_type": "Bearer", "client_id": query.get("client_id", "")})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def resources(self) -> set[str]:
        return {r["resource"] for r in self.requests}


@pytest.fixture
def identity_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityEndpoint]:
    """The platform's token endpoint, announced to this process as the platform announces it."""
    endpoint = IdentityEndpoint().start()
    for name, value in endpoint.env.items():
        monkeypatch.setenv(name, value)
    yield endpoint
    endpoint.stop()


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
