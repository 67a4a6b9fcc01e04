"""De-identifying single files in process: the profile, each option, pseudonyms, streaming, refusals."""

from __future__ import annotations

import glob
import io
import os
from datetime import date, timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from shared.deid.dataset import DATE_VRS, TEXT_VRS, Deidentifier, KeyChanged, NotDeidentified
from shared.deid.profile import EDITION, OPTIONS, Profile, ProfileError
from shared.deid.pseudonyms import Pseudonyms
from shared.deid.stream import deidentify_file
from testkit.corpus import corpus, identifying_instance
from testkit.instances import encode, make_dataset

KEY = b"test key"
BASIC = Profile()
MARKERS = {0x00120063, 0x00120064, 0x00280303}  # method, method codes, longitudinal temporal information
PYDICOM_FILES = sorted(glob.glob(os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "*.dcm")))


def run(data: bytes, profile: Profile = BASIC, key: bytes = KEY, chunk: int = 1000) -> tuple[bytes, object]:
    """The de-identified file (fed in `chunk`-byte pieces, as a store would send it) and its new identifier."""
    out = deidentify_file((data[i:i + chunk] for i in range(0, len(data), chunk)),
                          Deidentifier(profile, Pseudonyms(key)))
    return b"".join(out.chunks), out.identifier


def read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


@pytest.fixture(scope="module")
def files():
    return corpus(patients=2, studies=1, series=2, instances=2)


def test_nothing_identifying_survives_the_basic_profile(files):
    for instance in files:
        data, identifier = run(instance.data)
        assert [value for value in instance.forbidden if value in data] == []
        ds = read(data)
        assert identifier.parts == (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.preamble == bytes(128)
        assert all(not element.tag.is_private for element in ds.iterall())


def test_markers_name_the_profile_and_its_options(files):
    ds = read(run(files[0].data, Profile.basic(["cleanDescriptors", "retainUids"]))[0])
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethod[0] == f"DICOM PS3.15 {EDITION} Basic Application Confidentiality Profile"
    codes = [(item.CodeValue, item.CodingSchemeDesignator) for item in ds.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM"), ("113110", "DCM"), ("113105", "DCM")]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"


def test_uids_are_keyed_pseudonyms_consistent_across_instances_and_references(files):
    out = [read(run(f.data)[0]) for f in files]
    for ds in out:
        for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.FrameOfReferenceUID):
            assert uid.startswith("2.25.") and len(uid) <= 64 and uid.is_valid
    by_study = {(f.study, ds.StudyInstanceUID) for f, ds in zip(files, out)}
    assert len({old for old, _ in by_study}) == len(by_study)  # one new study UID per original study
    by_series = {(f.series, ds.SeriesInstanceUID, ds.FrameOfReferenceUID) for f, ds in zip(files, out)}
    assert len({old for old, *_ in by_series}) == len(by_series)
    sops = {ds.SOPInstanceUID for ds in out}
    assert all(ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID in sops for ds in out)  # references resolve
    assert all(ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage for ds in out)  # standard UIDs kept


def test_the_same_key_gives_the_same_file_and_another_key_other_pseudonyms(files):
    first, again, other = run(files[0].data), run(files[0].data), run(files[0].data, key=b"another key")
    assert first == again
    assert other[1].study != first[1].study and read(other[0]).PatientID != read(first[0]).PatientID


def test_patients_get_keyed_pseudonyms(files):
    ids = {f.study: read(run(f.data)[0]) for f in files}
    patients = {(ds.PatientID, str(ds.PatientName)) for ds in ids.values()}
    assert len(patients) == 2 and all(pid == name and pid.startswith("ANON") for pid, name in patients)


def _top_level_changes(basic: Dataset, other: Dataset) -> set[int]:
    """Attributes other than sequences (whose items change with the attributes inside) that differ."""
    tags = (set(basic.keys()) | set(other.keys())) - MARKERS
    return {int(t) for t in tags if t not in basic or t not in other or basic[t].value != other[t].value
            if (basic.get(t) or other.get(t)).VR != "SQ"}


def _effective(profile: Profile, element) -> str | None:
    """The action as applied: cleaning what is neither text, date nor sequence (bytes) removes it."""
    action = profile.action(element.tag)
    return "X" if action == "C" and element.VR not in TEXT_VRS | DATE_VRS | {"SQ"} else action


def _expected_changes(option: str, original: Dataset) -> set[int]:
    basic, chosen = Profile(), Profile.basic([option])
    return {int(e.tag) for e in original if not e.tag.is_private and int(e.tag) not in MARKERS and e.VR != "SQ"
            and _effective(basic, e) != _effective(chosen, e)}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_each_option_changes_exactly_what_it_should(files, option):
    original = read(files[0].data)
    basic = read(run(files[0].data)[0])
    chosen = read(run(files[0].data, Profile.basic([option]))[0])
    expected = _expected_changes(option, original)
    assert expected, f"the corpus fills no attribute that {option} changes"
    assert _top_level_changes(basic, chosen) == expected
    offset = timedelta(days=Pseudonyms(KEY).date_offset_days(original.PatientID))
    for tag in expected & set(chosen.keys()):
        action = Profile.basic([option]).action(tag)
        kept, was = chosen[tag], original[tag]
        if action == "K" and kept.VR != "SQ":
            assert kept.value == was.value
        elif action == "C" and kept.VR == "DA":
            assert kept.value == (date.fromisoformat(was.value) - offset).strftime("%Y%m%d")
        elif action == "C" and kept.VR == "DT":
            assert kept.value == (date.fromisoformat(was.value[:8]) - offset).strftime("%Y%m%d") + was.value[8:]
    if option == "retainUids":
        assert chosen.ReferencedImageSequence[0].ReferencedSOPInstanceUID == files[0].sop  # nested ones too


def test_clean_descriptors_removes_the_patients_own_values_from_kept_text():
    instance = identifying_instance(3, "1.2.3", "1.2.3.4", "1.2.3.4.5",
                                    StudyDescription="CT head of p3family, id P3PID, ok")
    ds = read(run(instance.data, Profile.basic(["cleanDescriptors"]))[0])
    assert ds.StudyDescription == "CT head of ***, id ***, ok"


def test_modified_dates_keep_intervals_and_say_so():
    study = identifying_instance(4, "1.2.3", "1.2.3.4", "1.2.3.4.5", StudyDate="20200102", SeriesDate="20200112")
    ds = read(run(study.data, Profile.basic(["retainLongitudinalTemporalInformationModifiedDates"]))[0])
    shifted = date.fromisoformat(ds.SeriesDate) - date.fromisoformat(ds.StudyDate)
    assert shifted == timedelta(days=10) and ds.StudyDate != "20200102"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


def test_pixel_data_and_what_follows_it_pass_through_or_are_deidentified():
    ds = make_dataset("1.2.3", "1.2.3.4", "1.2.3.4.5", pixel_bytes=3 * 1000 + 2, PatientName="Doe^Jane")
    ds.PixelData = os.urandom(3002)
    ds.add_new(0x7FE10010, "LO", "ACME AFTER")  # a private block after the pixel data
    ds.add_new(0x7FE11001, "LO", "Doe^Jane")
    ds.DataSetTrailingPadding = b"Doe^Jane"
    data, _ = run(encode(ds), chunk=777)
    out = read(data)
    assert out.PixelData == ds.PixelData
    assert b"Doe" not in data and b"ACME AFTER" not in data


@pytest.mark.parametrize("path", PYDICOM_FILES, ids=os.path.basename)
def test_pydicoms_files_are_deidentified_with_their_pixels_intact_or_refused(path):
    original = Path(path).read_bytes()
    try:
        data, _ = run(original)
    except NotDeidentified as refused:
        assert str(refused)  # refused safely, with a reason
        return
    ds, was = read(data), pydicom.dcmread(path)
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        assert ds.get(keyword) == was.get(keyword)
    assert ds.PatientIdentityRemoved == "YES"
    for uid in (was.get("StudyInstanceUID"), was.get("SOPInstanceUID")):
        assert uid.encode() not in data
    if was.get("PatientName"):
        assert str(ds.PatientName).startswith("ANON")


@pytest.mark.parametrize(("data", "reason"), [
    (encode(make_dataset("1.2.3", "1.2.3.4", "1.2.3.4.5", BurnedInAnnotation="YES")), "BurnedInAnnotation"),
    (os.urandom(5000), "cannot be parsed"),
    (encode(make_dataset("1.2.3", "1.2.3.4", "1.2.3.4.5", pixel_bytes=5000))[:-100], "truncated"),
])
def test_unsafe_files_are_refused(data, reason):
    with pytest.raises(NotDeidentified, match=reason):
        run(data)


def test_a_large_header_is_read_in_doubling_steps_not_per_chunk():
    ds = make_dataset("1.2.3", "1.2.3.4", "1.2.3.4.5", StudyDescription="x" * 60, PatientComments="y" * 500_000)
    data, _ = run(encode(ds), chunk=4096)
    assert read(data).StudyInstanceUID.startswith("2.25.")


@pytest.mark.parametrize(("options", "index"), [(["retainUids", "retainPets"], 1), ([7], 0),
                                                 (["retainLongitudinalTemporalInformationModifiedDates",
                                                   "RETAINLONGITUDINALTEMPORALINFORMATIONFULLDATES"], 1)])
def test_unsupported_options_are_named_by_position(options, index):
    with pytest.raises(ProfileError) as refused:
        Profile.basic(options)
    assert refused.value.index == index


def test_the_orchestration_carries_a_fingerprint_of_the_key_never_the_key(tmp_path):
    env = {"Export__Deidentification__Key": "the secret key"}
    carried = Deidentifier(Profile.basic(["retainUids"]), Pseudonyms.from_settings(env)).to_json()
    assert "the secret key" not in str(carried)
    assert Deidentifier.from_json(carried, env).profile.options == ("retainUids",)
    with pytest.raises(KeyChanged, match="Export__Deidentification__Key changed"):
        Deidentifier.from_json(carried, {"Export__Deidentification__Key": "rotated"})


def test_without_a_key_setting_one_is_created_once_in_the_key_file(tmp_path):
    env = {"Export__Deidentification__KeyFile": str(tmp_path / "deid.key")}
    first, second = Pseudonyms.from_settings(env), Pseudonyms.from_settings(env)
    assert first.key_id == second.key_id and (tmp_path / "deid.key").stat().st_mode & 0o077 == 0
