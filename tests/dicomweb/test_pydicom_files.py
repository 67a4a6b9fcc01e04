"""The DICOM test files shipped in the pydicom wheel, each stored through STOW-RS on the local host:
stored byte-identical (checked by retrieving it), or rejected for the reason listed here."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import requests
from pydicom.data import get_testdata_files

from testkit.instances import multipart, stow_content_type

NOT_PART_10 = (0xC000, "not a DICOM Part 10 file (no DICM prefix)")
# Which files the store refuses, and why: every one lacks something a stored instance must have.
REJECTED = {
    "ExplVR_BigEndNoMeta.dcm": NOT_PART_10,
    "ExplVR_LitEndNoMeta.dcm": NOT_PART_10,
    "no_meta.dcm": NOT_PART_10,
    "rtstruct.dcm": NOT_PART_10,
    "MR_truncated.dcm": (0xC000, "truncated: (7FE0,0010) runs past the end of the part"),
    "rtplan_truncated.dcm": (0xC000, "truncated: (300A,00B0) runs past the end of the part"),
    "JPEGLSNearLossless_08.dcm": (0xA900, "missing Study Instance UID (0020,000D)"),
    "JPEGLSNearLossless_16.dcm": (0xA900, "missing Study Instance UID (0020,000D)"),
    "SC_rgb_jls_lossy_line.dcm": (0xA900, "missing Study Instance UID (0020,000D)"),
    "SC_rgb_jls_lossy_sample.dcm": (0xA900, "missing Study Instance UID (0020,000D)"),
    "UN_sequence.dcm": (0xA900, "missing SOP Class UID (0008,0016)"),
    "empty_charset_LEI.dcm": (0xA900, "missing SOP Class UID (0008,0016)"),
    "meta_missing_tsyntax.dcm": (0xA900, "missing SOP Class UID (0008,0016)"),
    "nested_priv_SQ.dcm": (0xA900, "missing SOP Class UID (0008,0016)"),
    "no_meta_group_length.dcm": (0xA900, "missing SOP Class UID (0008,0016)"),
    "priv_SQ.dcm": (0xA900, "missing SOP Class UID (0008,0016)"),
}
with warnings.catch_warnings():  # pydicom also tries to download its optional extra files: no network here
    warnings.simplefilter("ignore")
    FILES = sorted(get_testdata_files("*.dcm"), key=lambda path: Path(path).name)


def test_the_wheel_ships_the_files_this_test_expects():
    assert len(FILES) == 78
    assert set(REJECTED) <= {Path(path).name for path in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda path: Path(path).name)
def test_each_file_is_stored_identically_or_rejected_with_its_reason(host, path):
    # One request per file: several files share SOP Instance UIDs, and re-storing replaces.
    data = Path(path).read_bytes()
    response = requests.post(f"{host.base_url}/studies", data=multipart(data),
                             headers={"Content-Type": stow_content_type()}, timeout=60)
    result = response.json()
    name = Path(path).name
    if name in REJECTED:
        assert response.status_code == 409
        [item] = result["00081198"]["Value"]
        assert (item["00081197"]["Value"][0], item["00000902"]["Value"][0]) == (
            REJECTED[name][0], f"part 1: {REJECTED[name][1]}")
        return
    assert response.status_code == 200, result
    [item] = result["00081199"]["Value"]
    retrieved = requests.get(item["00081190"]["Value"][0], headers={"Accept": "application/dicom"}, timeout=60)
    assert retrieved.status_code == 200
    assert retrieved.content == data
