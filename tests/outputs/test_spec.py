"""`output` and `metadata` in POST /export: a 400 naming output.<field> for each thing wrong (no storage)."""

from __future__ import annotations

import json

import pytest
from pydicom import uid

from shared.errors import ClientError
from shared.export.request import parse_export_request
from shared.export.settings import ExportSettings
from shared.outputs.spec import DEFAULT_ATTRIBUTES, OutputSpec

POLICY = ExportSettings()
DESTINATION = {"type": "azureblob", "settings": {
    "blobContainerUri": "https://acct.blob.core.windows.net/export?sv=2023-11-03&sr=c&sp=cw&sig=c2lnbmF0dXJl"}}


def parse(**extra: object) -> OutputSpec:
    document = {"source": {"type": "identifiers", "settings": {"values": ["1.2.3"]}}, "destination": DESTINATION,
                **extra}
    return parse_export_request(json.dumps(document).encode(), "application/json", POLICY).output


def test_without_output_files_are_copied_as_stored() -> None:
    assert parse().plain


def test_the_three_formats_and_a_metadata_table() -> None:
    dicom = parse(output={"format": "dicom", "transferSyntax": uid.JPEG2000Lossless})
    assert (dicom.format, dicom.transfer_syntax, dicom.plain) == ("dicom", uid.JPEG2000Lossless, False)
    png = parse(Output={"Format": "PNG", "bitDepth": 16, "window": {"center": 40, "width": 400}})
    assert (png.format, png.bit_depth, png.window) == ("png", 16, (40.0, 400.0))
    jpeg = parse(output={"format": "jpeg", "quality": 80, "window": "minmax"})
    assert (jpeg.quality, jpeg.window) == (80, "minmax")
    lossy = parse(output={"format": "dicom", "transferSyntax": uid.JPEG2000, "allowLossy": True})
    assert lossy.allow_lossy
    table = parse(metadata={"formats": ["parquet", "jsonl"]})
    assert table.metadata_formats == ("parquet", "jsonl") and table.metadata_attributes == DEFAULT_ATTRIBUTES
    assert table.as_stored and not table.plain
    chosen = parse(metadata={"attributes": ["PatientID", "Modality"]})
    assert chosen.metadata_formats == ("jsonl",) and chosen.metadata_attributes == ("PatientID", "Modality")
    assert OutputSpec.from_json(png.to_json()) == png


@pytest.mark.parametrize(("extra", "field"), [
    ({"output": {"format": "tiff"}}, "output.format"),
    ({"output": {}}, "output.format"),
    ({"output": "png"}, "output"),
    ({"output": {"format": "dicom", "transferSyntax": "1.2.840.10008.1.2.4.50"}}, "output.transferSyntax"),
    ({"output": {"format": "dicom", "transferSyntax": "not a uid"}}, "output.transferSyntax"),
    ({"output": {"format": "dicom", "transferSyntax": uid.JPEGLSNearLossless}}, "output.transferSyntax"),
    ({"output": {"format": "dicom", "transferSyntax": uid.JPEG2000, "allowLossy": "yes"}}, "output.allowLossy"),
    ({"output": {"format": "dicom", "allowLossy": True}}, "output.allowLossy"),
    ({"output": {"format": "dicom", "quality": 90}}, "output.quality"),
    ({"output": {"format": "png", "quality": 90}}, "output.quality"),
    ({"output": {"format": "jpeg", "bitDepth": 16}}, "output.bitDepth"),
    ({"output": {"format": "png", "transferSyntax": uid.ExplicitVRLittleEndian}}, "output.transferSyntax"),
    ({"output": {"format": "png", "bitDepth": 12}}, "output.bitDepth"),
    ({"output": {"format": "png", "bitDepth": 8.0}}, "output.bitDepth"),
    ({"output": {"format": "jpeg", "quality": 0}}, "output.quality"),
    ({"output": {"format": "jpeg", "quality": True}}, "output.quality"),
    ({"output": {"format": "png", "window": "first"}}, "output.window"),
    ({"output": {"format": "png", "window": {"center": 40, "width": 0}}}, "output.window"),
    ({"output": {"format": "png", "window": {"center": 40}}}, "output.window"),
    ({"output": {"format": "png", "window": {"center": 40, "width": 9, "x": 1}}}, "output.window.x"),
    ({"output": {"format": "png", "colour": True}}, "output.colour"),
    ({"metadata": {"formats": ["csv"]}}, "metadata.formats"),
    ({"metadata": {"formats": []}}, "metadata.formats"),
    ({"metadata": {"attributes": ["PatientID", "NoSuchKeyword"]}}, "metadata.attributes[1]"),
    ({"metadata": {"attributes": ["ReferencedImageSequence"]}}, "metadata.attributes[0]"),
    ({"metadata": {"attributes": []}}, "metadata.attributes"),
    ({"metadata": {"rows": 1}}, "metadata.rows"),
])
def test_each_bad_value_is_a_400_naming_its_field(extra: dict, field: str) -> None:
    with pytest.raises(ClientError) as refused:
        parse(**extra)
    assert refused.value.status == 400
    assert refused.value.field == field
    assert field in str(refused.value)
