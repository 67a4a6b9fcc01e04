"""Research outputs end to end: real HTTP to the local host, Azurite as store and destination.

The store holds pydicom's own files (every transfer syntax it ships that a decoder reads) and, for
de-identification, the identifying corpus of testkit/corpus.py. After each export, what landed
is read back: the files, the manifest and the metadata table.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings

import duckdb
import numpy as np
import pandas as pd
import pydicom
import pytest
import requests
from azure.storage.blob import ContainerClient
from PIL import Image
from pydicom import uid as uids

from shared.stores.blob.store import DicomStore
from testkit.corpus import corpus
from testkit.exporting import error_log, export_body, finished, host_fixtures, start
from testkit.shipped import load, stored_instances

KEY = "the outputs test key"

hosts, store, destination = host_fixtures("outputs-hosts")


@pytest.fixture(scope="module")
def seeded(store: DicomStore) -> dict:
    """pydicom's files and two patients of the identifying corpus, stored; what must never leak."""
    files = corpus(patients=2, studies=1, series=1, instances=2)
    forbidden = set().union(*(f.forbidden for f in files))
    for f in files:
        store.put(f.study, f.series, f.sop, io.BytesIO(f.data), len(f.data))
    originals = {}
    for (study, series, sop), path in stored_instances():
        ds, raw = load(path)
        store.put(study, series, sop, io.BytesIO(raw), len(raw))
        originals[sop] = ds
        forbidden |= {study.encode(), series.encode(), sop.encode()}
    dashed = {f"{v[:4]}-{v[4:6]}-{v[6:]}".encode() for v in map(bytes.decode, forbidden) if re.fullmatch(r"\d{8}", v)}
    return {"studies": sorted({f.study for f in files} | {i[0][0] for i in stored_instances()}),
            "originals": originals, "forbidden": forbidden | dashed, "corpus": files}


def _export(host, destination: ContainerClient, conn: str, values: list[str], **extra: object) -> tuple[str, dict]:
    operation = start(host, export_body(values, destination, conn) | extra)
    return operation["id"], finished(operation["href"], timeout=300)


def _blobs(destination: ContainerClient, operation_id: str) -> dict[str, bytes]:
    return {b.name.removeprefix(f"{operation_id}/"): destination.download_blob(b.name).readall()
            for b in destination.list_blobs(name_starts_with=f"{operation_id}/")}


def _check_manifest_and_md5(destination: ContainerClient, operation_id: str, written: dict[str, bytes]) -> None:
    """The manifest lists every file written but itself and errors.log, once, with its SHA-256; each has its MD5."""
    lines = [line.split("  ", 1) for line in written["manifest-sha256.txt"].decode().splitlines()]
    expected = sorted((name, hashlib.sha256(data).hexdigest())
                      for name, data in written.items() if name not in ("manifest-sha256.txt", "errors.log"))
    assert sorted((path, digest) for digest, path in lines) == expected
    for name, data in written.items():
        if name not in ("manifest-sha256.txt", "errors.log"):
            settings = destination.get_blob_client(f"{operation_id}/{name}").get_blob_properties().content_settings
            assert bytes(settings.content_md5 or b"") == hashlib.md5(data).digest(), name


def test_transcoded_export_keeps_every_pixel_and_its_table_reads_in_pandas_and_duckdb(
        hosts, seeded, destination, storage_connection_string, tmp_path):
    studies = sorted({i[0][0] for i in stored_instances()})
    operation_id, done = _export(hosts(), destination, storage_connection_string, studies,
                                 output={"format": "dicom", "transferSyntax": uids.ExplicitVRLittleEndian},
                                 metadata={"formats": ["jsonl", "parquet"]})
    assert done["status"] == "completed", done
    written = _blobs(destination, operation_id)
    results = {n: d for n, d in written.items() if n.startswith("results/")}
    assert done["results"]["exported"] == len(results) == len(seeded["originals"])
    for name, data in results.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data))
        original = seeded["originals"][ds.SOPInstanceUID]
        assert name == f"results/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
        if "PixelData" in original:
            assert ds.file_meta.TransferSyntaxUID == uids.ExplicitVRLittleEndian, name
            assert np.array_equal(ds.pixel_array, original.pixel_array), name
        else:  # no pixel data: copied unchanged
            assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    _check_manifest_and_md5(destination, operation_id, written)

    (tmp_path / "metadata.parquet").write_bytes(written["metadata.parquet"])
    table = pd.read_parquet(tmp_path / "metadata.parquet")
    assert sorted(table["path"]) == sorted(results)
    assert all(table["sha256"] == [hashlib.sha256(results[p]).hexdigest() for p in table["path"]])
    assert set(table["TransferSyntaxUID"].dropna()) <= {uids.ExplicitVRLittleEndian, *(
        str(d.file_meta.TransferSyntaxUID) for d in seeded["originals"].values())}
    jsonl = pd.read_json(io.BytesIO(written["metadata.jsonl"]), lines=True)
    assert sorted(jsonl["path"]) == sorted(table["path"])
    ct = next(d for d in seeded["originals"].values() if d.get("StudyDate") and d.get("PixelSpacing"))
    typed = duckdb.sql(f"select Rows, PixelSpacing, StudyDate from '{tmp_path / 'metadata.parquet'}' "
                       f"where SOPInstanceUID = '{ct.SOPInstanceUID}'").fetchall()
    assert typed[0][0] == ct.Rows  # a number
    assert typed[0][1] == [float(v) for v in ct.PixelSpacing]  # a list of numbers
    assert typed[0][2].strftime("%Y%m%d") == ct.StudyDate  # a date


def test_png_export_of_deidentified_instances_leaks_nothing(hosts, seeded, destination, storage_connection_string):
    host = hosts(Export__Deidentification__Key=KEY)
    operation_id, done = _export(host, destination, storage_connection_string, seeded["studies"],
                                 deidentification={"profile": "basic"},
                                 output={"format": "png", "bitDepth": 16, "window": "auto"},
                                 metadata={"formats": ["parquet"]})
    assert done["status"] == "completed", done
    written = _blobs(destination, operation_id)
    leaks = sorted(v for v in seeded["forbidden"] for data in written.values() if v in data)
    assert leaks == []
    images = {n: d for n, d in written.items() if n.startswith("results/")}
    assert images and all(re.fullmatch(r"results/[\d.]+/[\d.]+/[\d.]+/\d+\.png", n) for n in images)
    for data in images.values():
        assert Image.open(io.BytesIO(data)).format == "PNG"
    frames: dict[str, list[int]] = {}
    for name in images:
        instance, frame = name.rsplit("/", 1)
        frames.setdefault(instance, []).append(int(frame.removesuffix(".png")))
    assert done["results"]["exported"] == len(frames)
    assert done["results"]["exported"] + done["results"]["skipped"] == len(seeded["originals"]) + len(seeded["corpus"])
    assert all(sorted(numbers) == list(range(1, len(numbers) + 1)) for numbers in frames.values())
    assert max(len(numbers) for numbers in frames.values()) > 1  # pydicom ships multi-frame images
    table = pd.read_parquet(io.BytesIO(written["metadata.parquet"]))
    assert sorted(table["path"]) == sorted(images)
    lines = error_log(destination, operation_id)
    assert any("not written as png: has no pixel data" in line["error"] for line in lines)
    _check_manifest_and_md5(destination, operation_id, written)


def test_a_bad_output_is_refused_naming_the_field_and_starts_nothing(hosts, destination, storage_connection_string):
    for output, field in (({"format": "tiff"}, "output.format"),
                          ({"format": "dicom", "transferSyntax": "1.2.3"}, "output.transferSyntax"),
                          ({"format": "dicom", "transferSyntax": uids.JPEG2000}, "output.transferSyntax"),
                          ({"format": "png", "quality": 90}, "output.quality")):
        body = export_body(["1.2.3"], destination, storage_connection_string) | {"output": output}
        r = requests.post(f"{hosts().base_url}/export", json=body, timeout=60)
        assert r.status_code == 400 and field in r.text, (output, r.text)
    assert not list(destination.list_blobs())
