"""The output step as a whole: names of the files, and what a de-identified rendering refuses."""

from __future__ import annotations

import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from shared.outputs.produce import produce
from shared.outputs.spec import OutputSpec
from shared.outputs.types import NotProduced
from testkit.shipped import load, readable

PNG = OutputSpec(format="png")


def _secondary_capture():
    return load(next(p for p in readable() if p.endswith("/SC_rgb_dcmtk_+eb+cr.dcm")))


def test_files_are_named_by_the_uids_of_the_header_written() -> None:
    ds, raw = _secondary_capture()
    (dicom,) = produce(OutputSpec(transfer_syntax=JPEG2000Lossless), ds, raw)
    assert dicom.name == f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    (png,) = produce(PNG, *_secondary_capture())
    assert png.name == f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}/1.png"


def test_a_deidentified_screen_capture_is_rendered_only_when_it_says_no_burned_in_text() -> None:
    ds, raw = _secondary_capture()
    assert "BurnedInAnnotation" not in ds
    assert len(list(produce(PNG, ds, raw))) == 1  # not de-identified: the owner's own data
    assert len(list(produce(OutputSpec(transfer_syntax=ExplicitVRLittleEndian), ds, raw, deidentified=True))) == 1
    with pytest.raises(NotProduced, match="BurnedInAnnotation NO"):
        list(produce(PNG, ds, raw, deidentified=True))
    ds.BurnedInAnnotation = "NO"
    assert len(list(produce(PNG, ds, raw, deidentified=True))) == 1
