"""The `DicomStore__*` settings of a DIMSE store (a PACS), checked before anything connects.

| Setting                              | Default        | Meaning |
| :----------------------------------- | :------------- | :------ |
| `DicomStore__Host`                   | —              | the PACS's host name or address |
| `DicomStore__Port`                   | —              | its DICOM port |
| `DicomStore__CalledAETitle`          | —              | the PACS's AE title |
| `DicomStore__CallingAETitle`         | `DICOM-EXPORT` | the export's own AE title, as registered on the PACS |
| `DicomStore__Tls`                    | false          | DICOM over TLS |
| `DicomStore__TlsCaFile`              | system CAs     | PEM file of the CAs that sign the PACS's certificate |
| `DicomStore__TlsCertificateFile`, `DicomStore__TlsKeyFile` | — | PEM files of a client certificate, when the PACS asks for one |
| `DicomStore__TlsServerName`          | the host       | the name the PACS's certificate must carry |
| `DicomStore__ConnectTimeoutSeconds`  | 10             | to connect and to have the association accepted |
| `DicomStore__TimeoutSeconds`         | 60             | the longest silence of the PACS while it is expected to answer |
| `DicomStore__MaxAssociations`        | 8              | associations one worker process holds open at most |
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared import settings
from shared.errors import Misconfigured

DEFAULT_CALLING_AE_TITLE = "DICOM-EXPORT"


@dataclass(frozen=True)
class DimseSettings:
    host: str
    port: int
    called_ae_title: str
    calling_ae_title: str = DEFAULT_CALLING_AE_TITLE
    tls: bool = False
    tls_ca_file: str | None = None
    tls_certificate_file: str | None = None
    tls_key_file: str | None = None
    tls_server_name: str | None = None
    connect_timeout: float = 10.0
    timeout: float = 60.0
    max_associations: int = 8

    @property
    def address(self) -> str:
        """`host:port (AE title)`: how messages name the PACS."""
        return f"{self.host}:{self.port} ({self.called_ae_title})"

    @classmethod
    def from_settings(cls, env: Mapping[str, str] | None = None) -> DimseSettings:
        """The settings in effect; Misconfigured names the first one missing or wrong."""
        def text(name: str) -> str | None:
            return (settings.get(name, None, env) or "").strip() or None

        def required(name: str) -> str:
            value = text(name)
            if value is None:
                raise Misconfigured(f"setting {name} is required with DicomStore__Type=dimse")
            return value

        try:
            port = int(required("DicomStore__Port"))
        except ValueError:
            port = 0
        if not 0 < port < 65536:
            raise Misconfigured("setting DicomStore__Port must be a port number (1 to 65535)")
        found = cls(
            host=required("DicomStore__Host"), port=port,
            called_ae_title=_ae_title("DicomStore__CalledAETitle", required("DicomStore__CalledAETitle")),
            calling_ae_title=_ae_title("DicomStore__CallingAETitle", text("DicomStore__CallingAETitle") or DEFAULT_CALLING_AE_TITLE),
            tls=_checked(lambda: settings.get_bool("DicomStore__Tls", False, env)),
            tls_ca_file=text("DicomStore__TlsCaFile"), tls_certificate_file=text("DicomStore__TlsCertificateFile"),
            tls_key_file=text("DicomStore__TlsKeyFile"), tls_server_name=text("DicomStore__TlsServerName"),
            connect_timeout=_positive("DicomStore__ConnectTimeoutSeconds", lambda: settings.get_float(
                "DicomStore__ConnectTimeoutSeconds", 10.0, env)),
            timeout=_positive("DicomStore__TimeoutSeconds", lambda: settings.get_float("DicomStore__TimeoutSeconds", 60.0, env)),
            max_associations=int(_positive("DicomStore__MaxAssociations", lambda: settings.get_int(
                "DicomStore__MaxAssociations", 8, env))),
        )
        found._check_tls()
        return found

    def _check_tls(self) -> None:
        files = {"DicomStore__TlsCaFile": self.tls_ca_file, "DicomStore__TlsCertificateFile": self.tls_certificate_file,
                 "DicomStore__TlsKeyFile": self.tls_key_file}
        if not self.tls:
            named = [name for name, path in files.items() if path] + (["DicomStore__TlsServerName"] if self.tls_server_name else [])
            if named:
                raise Misconfigured(f"setting {named[0]} needs DicomStore__Tls=true")
            return
        if bool(self.tls_certificate_file) != bool(self.tls_key_file):
            raise Misconfigured("settings DicomStore__TlsCertificateFile and DicomStore__TlsKeyFile go together")
        for name, path in files.items():
            if path and not os.path.isfile(path):
                raise Misconfigured(f"setting {name} names no readable file")
        try:
            self.ssl_context()
        except (ssl.SSLError, OSError, ValueError) as error:
            raise Misconfigured(f"settings DicomStore__Tls*: the certificate files cannot be used ({error})") from None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every association (None without TLS): the PACS's certificate is always verified."""
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.tls_ca_file)
        if self.tls_certificate_file:
            context.load_cert_chain(self.tls_certificate_file, self.tls_key_file)
        return context


def _ae_title(name: str, value: str) -> str:
    """An AE title: 1 to 16 characters of printable ASCII without a backslash (PS3.5 VR AE)."""
    if len(value) > 16 or not all(" " <= c <= "~" and c != "\\" for c in value):
        raise Misconfigured(f"setting {name} must be an AE title: 1 to 16 characters, "
                                 "printable ASCII, no backslash")
    return value


def _checked[T](read: Callable[[], T]) -> T:
    """The setting `read` reads; its ValueError (which names it) as Misconfigured."""
    try:
        return read()
    except ValueError as error:
        raise Misconfigured(str(error)) from None


def _positive(name: str, read: Callable[[], float]) -> float:
    value = _checked(read)
    if value <= 0:
        raise Misconfigured(f"setting {name} must be more than 0")
    return value
