"""The metadata table of an export: `<op>/metadata.jsonl` and, when asked, `<op>/metadata.parquet`.

One row per exported file: its path under `<op>/`, SHA-256, size, the frame a rendered image
shows, and the attributes asked for, taken from the header the copy already parsed (after
de-identification, so the rows hold the de-identified values). Types follow each attribute's
dictionary VR and VM, so every row has the same columns: numbers (IS, DS, US, FL, ...) as numbers,
DA as dates, a multi-valued attribute as a list, everything else as text; absent is null.

Rows are staged like the manifest: each batch stages its rows as one block of metadata.jsonl whose
id is the batch's place in the export, so a retried batch replaces its block and never duplicates
a row; the end of the export commits the blocks in order, then reads the JSONL back a block at a
time into Parquet row groups (pyarrow). metadata.jsonl is always written, as the staging of the rows.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, ContainerClient, ContentSettings
from pydicom.datadict import dictionary_VM, dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from shared.export.upload import Digests, Hashed, upload, with_md5

JSONL, PARQUET = "metadata.jsonl", "metadata.parquet"
FIXED = {"path": pa.string(), "sha256": pa.string(), "size": pa.int64(), "frame": pa.int32()}
_INTEGER_VRS = {"IS", "US", "SS", "UL", "SL", "UV", "SV", "US or SS", "US or OW", "US or SS or OW"}
_FLOAT_VRS = {"DS", "FL", "FD"}
_ROWS_PER_GROUP = 10_000
_JSONL_CONTENT = ContentSettings(content_type="application/x-ndjson; charset=utf-8")
_PARQUET_CONTENT = ContentSettings(content_type="application/vnd.apache.parquet")


def schema(attributes: Iterable[str]) -> pa.Schema:
    """The columns: the fixed ones, then each attribute typed by its VR and VM."""
    return pa.schema([*FIXED.items(), *((k, _type(k)) for k in attributes)])


def row(ds: Dataset, attributes: Iterable[str], path: str, digests: Digests, frame: int | None = None
        ) -> dict[str, Any]:
    """One row of the table (JSON values: a date as YYYY-MM-DD)."""
    values: dict[str, Any] = {"path": path, "sha256": digests.sha256.hex(), "size": digests.size, "frame": frame}
    for keyword in attributes:
        source = ds.file_meta if keyword.startswith("TransferSyntax") and hasattr(ds, "file_meta") else ds
        values[keyword] = _value(keyword, source.get(keyword))
    return values


def _type(keyword: str) -> pa.DataType:
    vr = dictionary_VR(keyword)
    scalar = (pa.int64() if vr in _INTEGER_VRS else pa.float64() if vr in _FLOAT_VRS
              else pa.date32() if vr == "DA" else pa.string())
    return scalar if dictionary_VM(keyword) == "1" else pa.list_(scalar)


def _value(keyword: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    vr, many = dictionary_VR(keyword), dictionary_VM(keyword) != "1"
    items = list(value) if isinstance(value, MultiValue | list) else [value]
    converted = [_scalar(vr, v) for v in items]
    return converted if many else converted[0]


def _scalar(vr: str, value: Any) -> Any:
    try:
        if vr in _INTEGER_VRS:
            return int(value)
        if vr in _FLOAT_VRS:
            return float(value)
        if vr == "DA":
            text = str(value).strip()
            return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else None
    except (TypeError, ValueError):
        return None
    return None if isinstance(value, bytes) else str(value)


class MetadataTable:
    """The metadata table of one operation in the destination container."""

    def __init__(self, container: ContainerClient, operation_id: str):
        self.container, self.operation_id = container, operation_id
        self.jsonl = container.get_blob_client(f"{operation_id}/{JSONL}")

    def stage(self, block: str, rows: Iterable[dict[str, Any]]) -> None:
        """Stage `rows` as block `block` of metadata.jsonl, replacing an earlier one of that id."""
        data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows).encode()
        if data:
            self.jsonl.stage_block(block, data, length=len(data))

    def commit(self, formats: Iterable[str], attributes: Iterable[str]) -> dict[str, Digests]:
        """Commit the staged rows and write the Parquet file if asked; the digests of the files, by name."""
        try:
            committed, uncommitted = self.jsonl.get_block_list("all")
        except ResourceNotFoundError:
            committed, uncommitted = [], []
        blocks = sorted({b.id for b in [*committed, *uncommitted]})
        self.jsonl.commit_block_list([BlobBlock(b) for b in blocks], content_settings=_JSONL_CONTENT)
        read_back = Hashed(self.jsonl.download_blob().chunks())  # hashed for the manifest as it is read once
        written = {}
        if "parquet" in formats:
            data = _parquet(_rows(read_back), schema(attributes))
            target = self.container.get_blob_client(f"{self.operation_id}/{PARQUET}")
            written[PARQUET] = upload(target, [data], _PARQUET_CONTENT, size=len(data))
        for _ in read_back:  # whatever the rows did not need
            pass
        digests = read_back.digests()
        self.jsonl.set_http_headers(with_md5(_JSONL_CONTENT, digests.md5))
        return {JSONL: digests, **written}


def _rows(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    rest = b""
    for chunk in chunks:
        *lines, rest = (rest + chunk).split(b"\n")
        yield from (json.loads(line) for line in lines if line)
    if rest.strip():
        yield json.loads(rest)


def _parquet(rows: Iterator[dict[str, Any]], table_schema: pa.Schema) -> bytes:
    """The rows as one Parquet file, written a row group at a time."""
    dates = [f.name for f in table_schema if f.type == pa.date32() or f.type == pa.list_(pa.date32())]
    out = io.BytesIO()
    with pq.ParquetWriter(out, table_schema) as writer:
        group: list[dict[str, Any]] = []
        for r in rows:
            for name in dates:
                r[name] = _dates(r.get(name))
            group.append(r)
            if len(group) == _ROWS_PER_GROUP:
                writer.write_table(pa.Table.from_pylist(group, schema=table_schema))
                group = []
        writer.write_table(pa.Table.from_pylist(group, schema=table_schema))
    return out.getvalue()


def _dates(value: Any) -> Any:
    if isinstance(value, list):
        return [_dates(v) for v in value]
    return date.fromisoformat(value) if isinstance(value, str) else None
