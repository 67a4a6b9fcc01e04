"""A local HTTPS receiver of completion notifications for tests: a self-signed certificate made here, a free
loopback port, a signature check of every delivery, and a number of first deliveries it answers 503 to.

The app trusts the certificate through Export__Notification__CaFile, the setting a deployment uses for a
receiver behind a private CA: no test-only path.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SECRET = "notification-secret-" + "k3y" * 8  # what the tests' requests sign with
NAME = "notify-receiver.invalid"  # a name no DNS knows (RFC 2606): only a test's resolver gives its address


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, localhost and NAME, valid for a day, and its key: (certificate.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notification receiver")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost"), x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "receiver.pem", folder / "receiver.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool  # the signature header matched HMAC-SHA256(secret, timestamp + body)
    answered: int

    @property
    def status(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Serves https://127.0.0.1:<port>/ until `stop`; answers 503 to the first `failures` deliveries."""

    cert: Path
    key: Path
    secret: str = SECRET
    failures: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"https://127.0.0.1:{self.server.server_address[1]}/hook?source=test"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                timestamp = self.headers.get("X-Export-Timestamp", "")
                expected = "sha256=" + hmac.new(receiver.secret.encode(), timestamp.encode() + body,
                                                hashlib.sha256).hexdigest()
                signed = hmac.compare_digest(expected, self.headers.get("X-Export-Signature", ""))
                answer = 503 if len(receiver.deliveries) < receiver.failures else 204 if signed else 401
                receiver.deliveries.append(Delivery(self.path, dict(self.headers), body, signed, answer))
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
