"""The one place that picks the export's store from the app settings (`DicomStore__Type`).

- `blob` (the default): the built-in store, a blob container (`shared.stores.blob`);
- `dicomweb`: any DICOMweb server at `DicomStore__DicomWebUrl` (`shared.stores.dicomweb`);
- `dimse`: a PACS over classic DICOM networking, C-FIND and C-GET (`shared.stores.dimse`).

A wrong or missing setting is a Misconfigured naming it, raised before anything connects.
A DICOMweb server may have data partitions (`DicomStore__DataPartitions`): `export_partition` says which
one an export reads, and `open_store(partition=…)` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared import settings
from shared.errors import ClientError, Misconfigured
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


def export_partition(requested: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The data partition an export reads: `requested` (the route's name), else the default partition on a store
    with partitions, else None. ClientError (400) when a store without partitions is asked for one (naming its
    type) or when the name is not one the Azure DICOM service accepts; connects to nothing."""
    from shared.stores.dicomweb.partitions import DEFAULT_PARTITION, name_problem
    from shared.stores.dicomweb.settings import PARTITIONS_SETTING, DicomWebSettings

    kind = store_type(env)
    partitioned = kind == "dicomweb" and DicomWebSettings.from_settings(env).partitions
    if requested is None:
        return DEFAULT_PARTITION if partitioned else None
    if not partitioned:
        unset = f" without setting {PARTITIONS_SETTING}=true" if kind == "dicomweb" else ""
        raise ClientError(400, f"partitionName: this server's store is {kind} ({TYPE_SETTING}={kind}{unset}), "
                          "which has no data partitions; export with POST /export", "partitionName")
    problem = name_problem(requested)
    if problem:
        raise ClientError(400, f"partitionName {requested[:100]!r} {problem}", "partitionName")
    return requested


def open_store(env: Mapping[str, str] | None = None, partition: str | None = None, **blob_options: Any) -> Store:
    """The store the settings name (data partition `partition` of a DICOMweb server that has them); `blob_options`
    go to the blob store's client (retry policy, timeouts)."""
    if store_type(env) == "dicomweb":
        from shared.stores.dicomweb.store import DicomWebStore

        return DicomWebStore.from_settings(env, partition)
    if partition is not None:
        raise Misconfigured(f"the export reads data partition {partition!r}, but setting {TYPE_SETTING} is "
                            f"{store_type(env)}, which has none")
    if store_type(env) == "dimse":
        from shared.stores.dimse.store import DimseStore

        return DimseStore.from_settings(env)
    from shared.stores.blob.store import DicomStore

    return DicomStore.from_settings(env, **blob_options)
