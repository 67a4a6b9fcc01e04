"""The one place that picks the export's store from the app settings (`DicomStore__Type`).

- `blob` (the default): the built-in store, a blob container (`shared.stores.blob`);
- `dicomweb`: any DICOMweb server at `DicomStore__DicomWebUrl` (`shared.stores.dicomweb`);
- `dimse`: a PACS over classic DICOM networking, C-FIND and C-GET (`shared.stores.dimse`).

A wrong or missing setting is a Misconfigured naming it, raised before anything connects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared import settings
from shared.errors import Misconfigured
from shared.stores.interface import Store

STORE_TYPES = ("blob", "dicomweb", "dimse")
TYPE_SETTING = "DicomStore__Type"


def store_type(env: Mapping[str, str] | None = None) -> str:
    """`blob`, `dicomweb` or `dimse`, as the settings say."""
    chosen = (settings.get(TYPE_SETTING, "blob", env) or "blob").strip().lower()
    if chosen not in STORE_TYPES:
        raise Misconfigured(f"setting {TYPE_SETTING} must be one of {', '.join(STORE_TYPES)}, not {chosen!r}")
    return chosen


def check_settings(env: Mapping[str, str] | None = None) -> None:
    """Misconfigured if the store's settings are wrong; connects to nothing."""
    if store_type(env) == "dicomweb":
        from shared.stores.dicomweb.settings import DicomWebSettings

        DicomWebSettings.from_settings(env)
    elif store_type(env) == "dimse":
        from shared.stores.dimse.settings import DimseSettings

        DimseSettings.from_settings(env)


def open_store(env: Mapping[str, str] | None = None, **blob_options: Any) -> Store:
    """The store the settings name; `blob_options` go to the blob store's client (retry policy, timeouts)."""
    if store_type(env) == "dicomweb":
        from shared.stores.dicomweb.store import DicomWebStore

        return DicomWebStore.from_settings(env)
    if store_type(env) == "dimse":
        from shared.stores.dimse.store import DimseStore

        return DimseStore.from_settings(env)
    from shared.stores.blob.store import DicomStore

    return DicomStore.from_settings(env, **blob_options)
