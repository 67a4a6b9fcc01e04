"""The bulk loader's parts that need no server: finding files, recognising DICOM, planning, batching."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest

from cli.loader import NOT_DICOM, DicomFile, Outcome, batches, inspect, plan, walk

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder as users have them: DICOM under odd names, next to things that are not DICOM."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(TEST_FILES / "CT_small.dcm", tmp_path / "a" / "IM0001")
    shutil.copy(TEST_FILES / "MR_small.dcm", tmp_path / "a" / "b" / "no-extension")
    shutil.copy(TEST_FILES / "ExplVR_LitEndNoMeta.dcm", tmp_path / "raw.bin")
    shutil.copy(TEST_FILES / "README.txt", tmp_path / "README.txt")
    shutil.copy(TEST_FILES / "crayons.icc", tmp_path / "a" / "crayons.icc")
    (tmp_path / "empty.dcm").write_bytes(b"")
    return tmp_path


def test_walk_finds_every_file_under_folders_and_takes_files_as_given(tree: Path) -> None:
    found = list(walk([tree, tree / "a" / "IM0001"]))
    assert [p.relative_to(tree).as_posix() for p in found] == [
        "README.txt", "empty.dcm", "raw.bin", "a/IM0001", "a/crayons.icc", "a/b/no-extension", "a/IM0001"]


def test_walk_names_a_path_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        list(walk([tmp_path / "nope"]))


def test_dicom_is_recognised_by_content_not_name(tree: Path) -> None:
    ct = inspect(tree / "a" / "IM0001")
    assert isinstance(ct, DicomFile)
    reference = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    assert ct.key == (reference.StudyInstanceUID, reference.SeriesInstanceUID, reference.SOPInstanceUID)
    assert ct.size == (TEST_FILES / "CT_small.dcm").stat().st_size
    # A dataset written without the Part 10 header still is DICOM: pydicom reads it.
    assert isinstance(inspect(tree / "raw.bin"), DicomFile)


@pytest.mark.parametrize("name, reason", [
    ("README.txt", "not DICOM: no 'DICM' preamble"),
    ("a/crayons.icc", "not DICOM: no 'DICM' preamble"),
    ("empty.dcm", "not DICOM: empty file"),
])
def test_other_files_are_skipped_with_the_reason(tree: Path, name: str, reason: str) -> None:
    outcome = inspect(tree / name)
    assert isinstance(outcome, Outcome) and not outcome.stored
    assert outcome.reason.startswith(reason)


def test_a_second_file_for_the_same_instance_is_skipped_naming_the_first(tmp_path: Path) -> None:
    one = DicomFile(tmp_path / "1", 10, "1.2", "1.2.3", "1.2.3.4")
    two = DicomFile(tmp_path / "2", 10, "1.2", "1.2.3", "1.2.3.4")
    other = DicomFile(tmp_path / "3", 10, "1.2", "1.2.3", "1.2.3.5")
    not_dicom = Outcome(tmp_path / "x", NOT_DICOM, "not DICOM: empty file")
    to_send, skipped = plan([one, not_dicom, two, other])
    assert to_send == [one, other]
    assert skipped[0] == not_dicom and skipped[1].kind == "duplicate"
    assert skipped[1].path == two.path and str(one.path) in skipped[1].reason


def test_batches_keep_to_their_limits_and_every_answer_maps_to_one_file(tmp_path: Path) -> None:
    def f(name: str, size: int = 10, sop: str | None = None) -> DicomFile:
        return DicomFile(tmp_path / name, size, "1", "1.1", sop if sop is not None else f"1.1.{name}")

    files = [f("1"), f("2"), f("3"), f("4", sop=""), f("5"), f("6", size=100), f("7", sop="1.1.5"), f("8")]
    grouped = [[x.path.name for x in b] for b in batches(files, max_files=3, max_bytes=105)]
    # "4" has no SOP Instance UID we could read: alone. "6" overflows the bytes. "7" repeats "5"'s UID.
    assert grouped == [["4"], ["1", "2", "3"], ["5"], ["6"], ["7", "8"]]
