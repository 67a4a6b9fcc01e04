"""The output step as a whole: names of the files, and what a de-identified rendering refuses."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from shared.outputs.instance import spooled
from shared.outputs.produce import produce as produce_instance
from shared.outputs.spec import OutputSpec
from shared.outputs.types import NotProduced, OutputFile
from testkit.shipped import encoded, load, readable

PNG = OutputSpec(format="png")


def produce(spec: OutputSpec, ds: Dataset, deidentified: bool = False) -> list[OutputFile]:
    with spooled([encoded(ds)]) as instance:
        return [OutputFile(f.name, [b"".join(f.chunks)], f.content_type, f.frame)
                for f in produce_instance(spec, instance, deidentified)]


def _secondary_capture():
    return load(next(p for p in readable() if p.endswith("/SC_rgb_dcmtk_+eb+cr.dcm")))[0]


def test_files_are_named_by_the_uids_of_the_header_written() -> None:
    ds = _secondary_capture()
    (dicom,) = produce(OutputSpec(transfer_syntax=JPEG2000Lossless), ds)
    assert dicom.name == f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    (png,) = produce(PNG, _secondary_capture())
    assert png.name == f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}/1.png"


def test_a_deidentified_screen_capture_is_rendered_only_when_it_says_no_burned_in_text() -> None:
    ds = _secondary_capture()
    assert "BurnedInAnnotation" not in ds
    assert len(produce(PNG, ds)) == 1  # not de-identified: the owner's own data
    assert len(produce(OutputSpec(transfer_syntax=ExplicitVRLittleEndian), ds, deidentified=True)) == 1
    with pytest.raises(NotProduced, match="BurnedInAnnotation NO"):
        produce(PNG, ds, deidentified=True)
    ds.BurnedInAnnotation = "NO"
    assert len(produce(PNG, ds, deidentified=True)) == 1
