"""Research outputs from the external stores, through the local host: a DICOMweb server (Orthanc) and a DIMSE PACS
(Orthanc's DICOM port, over C-FIND and C-GET).

One test per store, on a handful of pydicom's files given new UIDs: JPEG 2000, RLE (grey, and colour with two
frames), native colour, and a 12-bit JPEG Extended that no decoder here reads. Each is exported transcoded to
Explicit VR Little Endian and rendered as PNG; the manifest and the Content-MD5 cover every file written.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom import uid as uids
from pydicom.dataset import FileDataset

from testkit.exporting import error_log, export_body, export_host, finished, new_container, start
from testkit.orthanc import Orthanc
from testkit.seed import uid
from testkit.shipped import encoded
from tests.orthanc.conftest import TEST_FILES
from tests.outputs.test_export import _blobs, _check_manifest_and_md5

DECODED = ("JPEG2000.dcm", "MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_small_odd.dcm")
UNDECODABLE = "JPEG-lossy.dcm"  # JPEG Extended, 12 bits


def _store(orthanc: Orthanc) -> tuple[str, dict[str, FileDataset], str]:
    """The files stored in `orthanc` in one new study: the study, SOP UID → original data set, the undecodable SOP."""
    study, originals = uid(), {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in (*DECODED, UNDECODABLE):
            ds = pydicom.dcmread(TEST_FILES / name)
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, uid()
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid()
            originals[ds.SOPInstanceUID] = pydicom.dcmread(io.BytesIO(encoded(ds)))
    orthanc.stow(*(encoded(ds) for ds in originals.values()))
    undecodable = next(sop for sop, ds in originals.items() if ds.file_meta.TransferSyntaxUID == uids.JPEGExtended12Bit)
    return study, originals, undecodable


@pytest.mark.parametrize("store", ["dicomweb", "dimse"])
def test_transcoded_and_png_exports_cover_every_file(store, orthanc, tmp_path, storage_connection_string):
    settings = orthanc.app_settings() if store == "dicomweb" else orthanc.dimse_settings()
    host = export_host(tmp_path / "hub", storage_connection_string, "unused", **settings).start()
    try:
        study, originals, undecodable = _store(orthanc)
        destination = new_container(storage_connection_string)
        for output in ({"format": "dicom", "transferSyntax": uids.ExplicitVRLittleEndian}, {"format": "png"}):
            operation = start(host, export_body([study], destination, storage_connection_string) | {"output": output})
            done = finished(operation["href"], timeout=300)
            assert (done["status"], done["results"]["exported"], done["results"]["skipped"]) == (
                "completed", len(DECODED), 1), done
            (logged,) = error_log(destination, operation["id"])
            assert logged["identifier"].endswith(undecodable) and "12 bits stored" in logged["error"]
            written = _blobs(destination, operation["id"])
            _check_manifest_and_md5(destination, operation["id"], written)
            _check_outputs(output["format"], written, originals, undecodable)
    finally:
        host.stop()


def _check_outputs(fmt: str, written: dict[str, bytes], originals: dict[str, FileDataset], skipped: str) -> None:
    """Transcoded files keep every pixel; PNGs are one per frame, of each frame's size."""
    results = {name.removeprefix("results/"): data for name, data in written.items() if name.startswith("results/")}
    expected = []
    for sop, ds in originals.items():
        if sop == skipped:
            continue
        name = f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{sop}"
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if fmt == "dicom":
            expected.append(f"{name}.dcm")
            got = pydicom.dcmread(io.BytesIO(results[f"{name}.dcm"]))
            assert got.file_meta.TransferSyntaxUID == uids.ExplicitVRLittleEndian
            assert np.array_equal(got.pixel_array, ds.pixel_array), name
        else:
            expected += [f"{name}/{n}.png" for n in range(1, frames + 1)]
            for n in range(1, frames + 1):
                assert Image.open(io.BytesIO(results[f"{name}/{n}.png"])).size == (ds.Columns, ds.Rows)
    assert sorted(results) == sorted(expected)
