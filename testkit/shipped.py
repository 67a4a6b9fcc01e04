"""pydicom's shipped test files, found by globbing its folder (get_testdata_files would download more)."""

from __future__ import annotations

import glob
import io
import os
import warnings
from functools import cache

import pydicom
from pydicom.dataset import Dataset, FileDataset

FOLDER = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")


@cache
def readable() -> tuple[str, ...]:
    """Every shipped file pydicom parses (with its file meta) and decodes the pixel data of, if it has any."""
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(glob.glob(os.path.join(FOLDER, "**", "*"), recursive=True)):
            try:
                ds = pydicom.dcmread(path)
                ds.file_meta.TransferSyntaxUID  # noqa: B018 - a file without one is not a stored instance
                if "PixelData" in ds:
                    ds.pixel_array  # noqa: B018
            except Exception:  # noqa: BLE001, S112 - not a file a store would hold, or no decoder reads it
                continue
            found.append(path)
    return tuple(found)


def load(path: str) -> tuple[FileDataset, bytes]:
    raw = open(path, "rb").read()  # noqa: SIM115
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path), raw


def encoded(ds: Dataset) -> bytes:
    """`ds` as a DICOM file."""
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def with_pixels(compressed: bool | None = None) -> list[str]:
    """The readable files with pixel data (only the compressed or uncompressed ones, when asked)."""
    chosen = []
    for path in readable():
        ds, _ = load(path)
        if "PixelData" in ds and (compressed is None or ds.file_meta.TransferSyntaxUID.is_compressed == compressed):
            chosen.append(path)
    return chosen


def stored_instances() -> list[tuple[tuple[str, str, str], str]]:
    """The readable files a store can hold (three valid UIDs, each SOP instance once): (UIDs, path)."""
    from shared.uids import is_uid

    chosen, seen = [], set()
    for path in readable():
        ds, _ = load(path)
        uids = tuple(str(ds.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
        if all(map(is_uid, uids)) and uids[2] not in seen:
            seen.add(uids[2])
            chosen.append(((uids[0], uids[1], uids[2]), path))
    return chosen
