"""Filling a store: a few random-byte instances through the store, or 10⁵ DICOM files straight into its container.

The bulk seed uploads to `<study>/<series>/<sop>.dcm` (the layout STOW writes, without STOW's cost).
"""

from __future__ import annotations

import io
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import urllib3
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas

from shared.stores.blob.store import DicomStore
from testkit.instances import encode, make_dataset

FIRST_INSTANCE = 100_001  # instance numbers of equal width (up to 899 999 per study): UIDs of equal length


def uid() -> str:
    """A fresh study UID, so tests sharing a store never see each other's instances."""
    return f"2.25.{uuid.uuid4().int}"[:60]


def open_store(connection_string: str, container: str) -> DicomStore:
    store = DicomStore.from_settings({"AzureWebJobsStorage": connection_string, "DicomStore__ContainerName": container})
    store.ensure_container()
    return store


def put_study(store: DicomStore, count: int, series_count: int = 1, size: int = 64,
              study: str | None = None) -> tuple[str, dict[str, bytes]]:
    """A study of `count` random-byte instances over `series_count` series; its blob names → bytes.

    The export copies bytes and never parses them, so random bytes make every file distinct.
    """
    study = study or uid()
    stored = {}

    def put(n: int) -> None:
        series = f"{study}.{n % series_count + 1}"
        data = os.urandom(size)
        instance = store.put(study, series, f"{series}.{n + 1}", io.BytesIO(data), len(data))
        stored[instance.blob_name] = data

    with ThreadPoolExecutor(max_workers=10) as pool:  # the client's connection pool size
        list(pool.map(put, range(count)))
    return study, stored


def dicom_file(study: str, series: str, sop: str, size: int) -> bytes:
    """A valid DICOM Part 10 Secondary Capture of `size` bytes (rounded up to even): OB pixel data pads it."""
    header = len(encode(make_dataset(study, series, sop, pixel_bytes=0)))
    pad = max(0, size - header)
    return encode(make_dataset(study, series, sop, pixel_bytes=pad + pad % 2))


@dataclass(frozen=True)
class Seeded:
    studies: list[str]
    files: list[str]  # blob names
    total_bytes: int


def seed(
    store: ContainerClient,
    studies: int,
    per_study: int,
    size: int,
    series_per_study: int = 1,
    threads: int = 32,
) -> Seeded:
    """Upload `studies` × `per_study` instances of about `size` bytes straight to the store's container.

    Quick enough for 10⁵ blobs: each series' first file is encoded once (pydicom takes about 1 ms a file)
    and every other instance of it is that file with its own SOP Instance UID written over the first's
    (UIDs of equal length, so no length field changes). The files go as plain PUTs with a container SAS
    from `threads` threads: about 1 000 blobs/s into an empty Azurite here, against about 600 through the
    SDK's per-request pipeline. Azurite's one Node process is the bound, and it slows as it fills and as the
    machine's load grows: 100 000 took 311 s at a load average of 11, 1 130 s at 20 to 30.
    """
    names: list[tuple[str, str, str]] = []
    templates: dict[str, tuple[bytes, bytes]] = {}  # series → (its first file, that file's SOP UID)
    study_uids = []
    for _ in range(studies):
        study = uid()
        study_uids.append(study)
        series_uids = [f"{study}.{s + 1}" for s in range(series_per_study)]
        names += [
            (study, series_uids[n % series_per_study], f"{study}.{series_per_study + 1}.{FIRST_INSTANCE + n}")
            for n in range(per_study)
        ]
    for study, series, sop in names:
        if series not in templates:
            template = dicom_file(study, series, sop, size)
            assert template.count(sop.encode()) == 2, "the SOP UID is in the file meta and the data set"
            templates[series] = (template, sop.encode())
    sas = generate_container_sas(
        store.account_name, store.container_name, account_key=store.credential.account_key,
        permission=ContainerSasPermissions(create=True, write=True), expiry=datetime.now(UTC) + timedelta(hours=12),
    )
    http = urllib3.PoolManager(maxsize=threads)
    headers = {"x-ms-blob-type": "BlockBlob", "x-ms-version": store.api_version, "Content-Type": "application/dicom"}

    def upload(parts: tuple[str, str, str]) -> int:
        template, first = templates[parts[1]]
        data = template.replace(first, parts[2].encode())
        r = http.request("PUT", f"{store.url}/{'/'.join(parts)}.dcm?{sas}", body=data, headers=headers)
        if r.status != 201:
            raise RuntimeError(f"seeding {parts[2]}: {r.status} {r.data[:200]!r}")
        return len(data)

    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(upload, names))
    return Seeded(study_uids, [f"{a}/{b}/{c}.dcm" for a, b, c in names], total)


def upload_file(store: ContainerClient, name: str, path: Path) -> None:
    """Upload one large file streamed from disk, a block at a time."""
    with open(path, "rb") as f:
        store.upload_blob(name, f, length=path.stat().st_size, overwrite=True, max_concurrency=1)
