"""The `DicomStore__*` settings of a DICOMweb store, checked before anything connects.

| Setting                      | Default | Meaning |
| :--------------------------- | :------ | :------ |
| `DicomStore__DicomWebUrl`    | —       | the DICOMweb base URL (`…/dicom-web`), http or https |
| `DicomStore__Authentication` | none    | `none`, `basic`, `bearer` or `managedIdentity` |
| `DicomStore__Username`, `DicomStore__Password` | — | for `basic` |
| `DicomStore__Token`          | —       | for `bearer` |
| `DicomStore__Scope`          | the Azure DICOM service's | the token scope for `managedIdentity` |
| `DicomStore__DataPartitions` | false   | the server has data partitions (`{url}/partitions/{name}/…`, the Azure DICOM service's form) |

The password and token are kept out of `repr` and never leave the process that read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared import settings
from shared.errors import Misconfigured

AUTHENTICATIONS = ("none", "basic", "bearer", "managedIdentity")
AZURE_DICOM_SCOPE = "https://dicom.healthcareapis.azure.com/.default"
PARTITIONS_SETTING = "DicomStore__DataPartitions"


@dataclass(frozen=True)
class DicomWebSettings:
    url: str
    authentication: str = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    scope: str = AZURE_DICOM_SCOPE
    partitions: bool = False  # the server has data partitions (shared/stores/dicomweb/partitions.py)

    @classmethod
    def from_settings(cls, env: Mapping[str, str] | None = None) -> DicomWebSettings:
        """The settings in effect; Misconfigured names the first one missing or wrong."""
        url = (settings.get("DicomStore__DicomWebUrl", None, env) or "").strip().rstrip("/")
        if not url:
            raise Misconfigured("setting DicomStore__DicomWebUrl is required with DicomStore__Type=dicomweb")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Misconfigured("setting DicomStore__DicomWebUrl must be an http or https URL")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise Misconfigured("setting DicomStore__DicomWebUrl must hold no credentials, query or fragment "
                                     "(use DicomStore__Authentication)")
        chosen = (settings.get("DicomStore__Authentication", "none", env) or "none").strip()
        authentication = {a.lower(): a for a in AUTHENTICATIONS}.get(chosen.lower())
        if authentication is None:
            raise Misconfigured(f"setting DicomStore__Authentication must be one of {', '.join(AUTHENTICATIONS)}")
        found = cls(
            url=url, authentication=authentication,
            username=settings.get("DicomStore__Username", None, env) or None,
            password=settings.get("DicomStore__Password", None, env) or None,
            token=(settings.get("DicomStore__Token", None, env) or "").strip() or None,
            scope=(settings.get("DicomStore__Scope", None, env) or "").strip() or AZURE_DICOM_SCOPE,
            partitions=settings.get_bool(PARTITIONS_SETTING, False, env),
        )
        needed = {"basic": ("DicomStore__Username", "DicomStore__Password"), "bearer": ("DicomStore__Token",)}
        values = {"DicomStore__Username": found.username, "DicomStore__Password": found.password,
                  "DicomStore__Token": found.token}
        for name in needed.get(authentication, ()):
            if not values[name]:
                raise Misconfigured(f"setting {name} is required with DicomStore__Authentication={authentication}")
        return found
