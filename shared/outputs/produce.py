"""The output step: one parsed instance in, the files to write out (and the header their metadata rows read).

    with spooled(chunks) as instance:
        for file in produce(spec, instance):
            upload(f"{op}/results/{file.name}", file.chunks)

`dicom` with a transfer syntax transcodes (shared/outputs/transcode.py); `png` and `jpeg` render
one image per frame (shared/outputs/render.py). De-identification, when asked, has already
rewritten the file, so names and headers hold the pseudonyms; it has skipped every instance
marked BurnedInAnnotation YES. A rendered image loses the header that warns a reader of burned-in
text, so a de-identified export renders a screen capture, ultrasound or visible-light image (the
classes where text in the pixels is the rule) only when it says BurnedInAnnotation NO. Files are named by the UIDs of
the header written: `<study>/<series>/<sop>.dcm`, or `<study>/<series>/<sop>/<frame>.png`.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset

from shared.outputs.instance import Instance
from shared.outputs.render import render
from shared.outputs.spec import OutputSpec
from shared.outputs.transcode import transcode
from shared.outputs.types import NotProduced, OutputFile
from shared.stores.interface import blob_name

DICOM_CONTENT_TYPE = "application/dicom"


# SOP classes whose pixels usually carry text: secondary capture, ultrasound, visible light (PS3.4 B.5).
BURNED_IN_PRONE = ("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.", "1.2.840.10008.5.1.4.1.1.6.", "1.2.840.10008.5.1.4.1.1.3.1",
                   "1.2.840.10008.5.1.4.1.1.77.1.")


def produce(spec: OutputSpec, instance: Instance, deidentified: bool = False) -> Iterator[OutputFile]:
    """The files `instance` becomes; NotProduced (from the first step) when it is skipped."""
    ds: Dataset = instance.header
    if deidentified and spec.format != "dicom" and _may_show_text(ds):
        raise NotProduced("a de-identified image of this kind (screen capture, ultrasound, visible light) is "
                          "rendered only with BurnedInAnnotation NO: text in its pixels cannot be removed")
    if spec.format == "dicom":
        ds, chunks = transcode(instance, spec.transfer_syntax) if spec.transfer_syntax else (ds, instance.chunks())
        yield OutputFile(f"{instance_name(ds)}.dcm", chunks, DICOM_CONTENT_TYPE)
    else:
        yield from render(instance, instance_name(ds), spec.format, spec.bit_depth, spec.window, spec.quality)


def _may_show_text(ds: Dataset) -> bool:
    sop_class = str(ds.get("SOPClassUID", ""))
    prone = any(sop_class == c or (c.endswith(".") and sop_class.startswith(c)) for c in BURNED_IN_PRONE)
    return prone and str(ds.get("BurnedInAnnotation", "")).strip().upper() != "NO"


def instance_name(ds: Dataset) -> str:
    """`<study>/<series>/<sop>` of the header; NotProduced without three valid UIDs."""
    try:
        return blob_name(*(str(ds.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID",
                                                          "SOPInstanceUID"))).removesuffix(".dcm")
    except ValueError:
        raise NotProduced("has no valid study, series or SOP instance UID") from None
