"""The output step: one parsed instance in, the files to write out (and the header their metadata rows read).

    for file in produce(spec, ds, raw):
        upload(f"{op}/results/{file.name}", file.data)

`dicom` with a transfer syntax transcodes (shared/outputs/transcode.py); `png` and `jpeg` render
one image per frame (shared/outputs/render.py). De-identification, when asked, has already
rewritten `ds` and `raw`, so names and headers hold the pseudonyms. Files are named by the UIDs of
the header written: `<study>/<series>/<sop>.dcm`, or `<study>/<series>/<sop>/<frame>.png`.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset, FileDataset

from shared.outputs.render import render
from shared.outputs.spec import OutputSpec
from shared.outputs.transcode import transcode
from shared.outputs.types import NotProduced, OutputFile
from shared.stores.interface import blob_name

DICOM_CONTENT_TYPE = "application/dicom"


def produce(spec: OutputSpec, ds: FileDataset, raw: bytes) -> Iterator[OutputFile]:
    """The files `ds` (whose file is `raw`) becomes; NotProduced (from the first step) when it is skipped."""
    if spec.format == "dicom":
        if spec.transfer_syntax:
            ds, raw = transcode(ds, raw, spec.transfer_syntax)
        yield OutputFile(f"{instance_name(ds)}.dcm", raw, DICOM_CONTENT_TYPE)
    else:
        yield from render(ds, instance_name(ds), spec.format, spec.bit_depth, spec.window, spec.quality)


def instance_name(ds: Dataset) -> str:
    """`<study>/<series>/<sop>` of the header; NotProduced without three valid UIDs."""
    try:
        return blob_name(*(str(ds.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID",
                                                          "SOPInstanceUID"))).removesuffix(".dcm")
    except ValueError:
        raise NotProduced("has no valid study, series or SOP instance UID") from None
