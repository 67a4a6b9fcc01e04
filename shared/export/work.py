"""What each export activity takes and returns: the work items that travel through the task hub.

The orchestrator hands each activity `Work.to_json()`, and the Durable extension hands the activity
that JSON decoded (azure.functions' ActivityTriggerConverter json-loads the string the extension
sends), so every activity receives a dict and reads it with `from_json`. The JSON keys are the ones
the export has always used, so instances already in a task hub resume across this change.
An instance travels as `shared.export.expand.instance_to_json`: [blob name, etag, size].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class ExpandWork:
    """List the next `identifiers` (the first resumed at `cursor`) into at most `max_batches` batches."""

    operation_id: str
    destination: Json  # Destination.protected(): no secret in clear
    identifiers: tuple[str, ...]
    cursor: str | None
    batch_size: int
    max_batches: int
    threads: int = 1
    deidentification: Json | None = None
    queries: tuple[Json, ...] = ()  # a query source: Query.to_json() of each, which `?<n>` identifiers name
    partition: str | None = None  # the DICOMweb server's data partition it reads (None: a store without them)

    def to_json(self) -> Json:
        return {"operationId": self.operation_id, "destination": self.destination,
                "identifiers": list(self.identifiers), "cursor": self.cursor,
                "batchSize": self.batch_size, "maxBatches": self.max_batches, "threads": self.threads,
                "deidentification": self.deidentification, **({"queries": list(self.queries)} if self.queries else {}),
                **_partition(self.partition)}

    @classmethod
    def from_json(cls, data: Json) -> ExpandWork:
        return cls(data["operationId"], data["destination"], tuple(data["identifiers"]), data.get("cursor"),
                   data["batchSize"], data["maxBatches"], data.get("threads", 1), data.get("deidentification"),
                   tuple(data.get("queries") or ()), data.get("partition"))


@dataclass(frozen=True)
class Expanded:
    """An expand's result: the batches, how many identifiers matched nothing, how far it got."""

    batches: tuple[tuple[list, ...], ...]  # each batch, its instances in instance_to_json form
    not_found: int
    consumed: int  # how many of the given identifiers are finished
    cursor: str | None  # where to resume listing the next unfinished one
    searched: dict[str, list[int]] | None = None  # a query source: query index -> [instances taken, rows dropped]

    def to_json(self) -> Json:
        return {"batches": [list(batch) for batch in self.batches], "notFound": self.not_found,
                "consumed": self.consumed, "cursor": self.cursor, **({"searched": self.searched} if self.searched else {})}

    @classmethod
    def from_json(cls, data: Json) -> Expanded:
        return cls(tuple(tuple(batch) for batch in data["batches"]), data["notFound"], data["consumed"],
                   data.get("cursor"), data.get("searched") or None)


@dataclass(frozen=True)
class CopyWork:
    """Copy one batch; (`generation`, `batch`) names its block of the manifest."""

    operation_id: str
    destination: Json
    instances: tuple[list, ...]
    threads: int
    generation: int
    batch: int
    deidentification: Json | None = None
    output: Json | None = None  # OutputSpec.to_json(); None: files as stored, no metadata table
    partition: str | None = None  # the DICOMweb server's data partition it reads (None: a store without them)

    def to_json(self) -> Json:
        return {"operationId": self.operation_id, "destination": self.destination,
                "instances": list(self.instances), "threads": self.threads,
                "deidentification": self.deidentification, "generation": self.generation, "batch": self.batch,
                "output": self.output, **_partition(self.partition)}

    @classmethod
    def from_json(cls, data: Json) -> CopyWork:
        return cls(data["operationId"], data["destination"], tuple(data["instances"]), data["threads"],
                   data["generation"], data["batch"], data.get("deidentification"), data.get("output"),
                   data.get("partition"))


@dataclass(frozen=True)
class Copied:
    """A copy's result: how many files it exported and how many it skipped (each with an errors.log line)."""

    exported: int
    skipped: int

    def to_json(self) -> Json:
        return {"exported": self.exported, "skipped": self.skipped}

    @classmethod
    def from_json(cls, data: Json) -> Copied:
        return cls(data["exported"], data["skipped"])


@dataclass(frozen=True)
class CommitWork:
    """Commit the manifest (and the metadata table, when `output` asks for one) the batches staged, and for a
    query source log the rows the store's searches dropped. After a failure or a cancel, only the manifest
    blocks of the generations before `before_generation` (those the counts count), no metadata table and no
    dropped rows' line (the completion writes them)."""

    operation_id: str
    destination: Json
    output: Json | None = None  # OutputSpec.to_json()
    dropped: int = 0
    before_generation: int | None = None
    linkage: Json | None = None  # the linkage table's container, protected like the destination
    lane_ends: tuple[int, ...] = ()  # an export run as lanes that failed or was canceled: each lane's bound

    @property
    def partial(self) -> bool:
        """A failed or canceled export's commit: only what its completed generations wrote."""
        return self.before_generation is not None or bool(self.lane_ends)

    def to_json(self) -> Json:
        return {"operationId": self.operation_id, "destination": self.destination, "output": self.output,
                **({"dropped": self.dropped} if self.dropped else {}),
                **({"beforeGeneration": self.before_generation} if self.before_generation is not None else {}),
                **({"linkage": self.linkage} if self.linkage is not None else {}),
                **({"laneEnds": list(self.lane_ends)} if self.lane_ends else {})}

    @classmethod
    def from_json(cls, data: Json) -> CommitWork:
        return cls(data["operationId"], data["destination"], data.get("output"), data.get("dropped", 0),
                   data.get("beforeGeneration"), data.get("linkage"), tuple(data.get("laneEnds") or ()))


@dataclass(frozen=True)
class Committed:
    """A commit's result: where the manifest is (no credentials), and its digest and size, which the status
    keeps outside the container so that `verify` can tell a rewritten manifest."""

    manifest_href: str
    sha256: str | None  # None only in a result committed before the digest was recorded
    size: int | None

    def to_json(self) -> Json:
        digest = {"manifestSha256": self.sha256, "manifestSize": self.size} if self.sha256 is not None else {}
        return {"manifestHref": self.manifest_href, **digest}

    @classmethod
    def from_json(cls, data: Json) -> Committed:
        return cls(data["manifestHref"], data.get("manifestSha256"), data.get("manifestSize"))


def _partition(partition: str | None) -> Json:
    """The `partition` key, left out for a store without partitions (so work items stay as they were)."""
    return {"partition": partition} if partition is not None else {}
