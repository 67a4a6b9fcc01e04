"""The export orchestration's whole input: everything needed to resume from one generation to the next.

It holds what is left of the source (identifiers, QUERY-prefixed query numbers, or WHOLE_STORE, and the store's opaque listing
cursor inside the first: a blob continuation token, or a QIDO offset), the destination with its
secrets protected, the batching settings fixed at start, the progress so far, and the
operation's original created time and errorHref. Each generation ends with
`continue_as_new(checkpoint.advance(...).to_json())`, so history never grows past one generation.
Plain JSON in and out: the orchestrator must stay deterministic and cheap to replay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any

from shared.export.settings import ExportSettings
from shared.export.work import Committed, CommitWork, Copied, CopyWork, Expanded, ExpandWork

WHOLE_STORE = "*"  # the one identifier of an export without a source: every instance in the store
QUERY = "?"  # `?<n>` stands for query n of `Checkpoint.search` (a query source)


@dataclass(frozen=True)
class Batching:
    batch_size: int
    max_parallel_batches: int
    max_parallel_threads: int
    retry_attempts: int
    first_retry_seconds: float
    backoff_coefficient: float

    @classmethod
    def from_settings(cls, settings: ExportSettings) -> Batching:
        return cls(settings.batch_size, settings.max_parallel_batches, settings.max_parallel_threads,
                   settings.retry_attempts, settings.first_retry_seconds, settings.backoff_coefficient)

    def retry_wait(self, attempt: int) -> timedelta | None:
        """The wait before retrying a step whose attempt number `attempt` (1-based) failed; None once it has had
        all its attempts. Every failed step is retried alike, as DurableTask.Core's RetryInterceptor did: the
        first interval (whole milliseconds, at least one) times the backoff coefficient to the power attempt - 1."""
        if attempt >= self.retry_attempts:
            return None
        first = max(1, round(self.first_retry_seconds * 1000))
        return timedelta(milliseconds=first * self.backoff_coefficient ** (attempt - 1))


@dataclass(frozen=True)
class Checkpoint:
    operation_id: str
    identifiers: tuple[str, ...]
    destination: dict[str, Any]  # Destination.protected(): no secret in clear
    batching: Batching
    created_time: str
    error_href: str
    cursor: str | None = None
    exported: int = 0
    skipped: int = 0
    generation: int = 1
    request_digest: str | None = None  # keyed digest of the request, for Idempotency-Key repeats
    prefetched: Expanded | None = None  # expansion of what is left, listed during the last copies
    deidentification: dict[str, Any] | None = None  # Deidentifier.to_json() (profile, options, key id: no key), and
    # "linkage": the linkage table's container as Destination.protected() (shared/export/linkage.py)
    search: dict[str, Any] | None = None  # a query source: {"queries": [...], "counts": [[selected, dropped], ...]}
    output: dict[str, Any] | None = None  # OutputSpec.to_json(); None: files as stored, no metadata table
    failure: str | None = None  # why the generation that started from here failed: the export ends with it
    partition: str | None = None  # the data partition of a DICOMweb store that has them (shared/stores/dicomweb/partitions.py)
    lanes: int = 1  # Export__Lanes at start: above 1, this export runs as that many lanes (shared/export/lanes.py)
    lane: int | None = None  # a lane's checkpoint: its number; it ends returning its status, its parent commits
    lane_inputs: tuple[dict[str, Any], ...] = ()  # a retried parent: where each of its lanes resumes
    notification: str | None = None  # Notification.protected(): where the end is POSTed (encrypted)

    @property
    def done(self) -> bool:
        return not self.identifiers

    def status(self, error: str | None = None, committed: Committed | None = None) -> dict[str, Any]:
        """The custom status published each generation: what the operation view shows (no secrets).

        `committed`: the commit step's result (manifestHref, manifestSha256, manifestSize), at the end.
        """
        status = {"createdTime": self.created_time, "errorHref": self.error_href,
                  "exported": self.exported, "skipped": self.skipped, "generation": self.generation}
        if error:
            status["error"] = error
        if committed:
            status.update(committed.to_json())
        if self.partition:
            status["partition"] = self.partition
        if (total := self.total) is not None:
            status["total"] = total
        if self.search:
            status["queries"] = [{"query": query, "selected": selected, "dropped": dropped} for query, (selected, dropped)
                                 in zip(self.search["queries"], self.search["counts"])]
        return status

    # -- the total: how many instances the export will have counted (exported + skipped) once it ends --------------

    @property
    def total(self) -> int | None:
        """exported + skipped as they will be at the end, once nothing is left to list; None until then.

        Known when every identifier not yet listed is one instance (it counts one: exported, or skipped when it
        is missing or fails): an export of instances knows it from the start, one of studies, series, the whole
        store or queries once its last listing is done (the look-ahead lists the next generation during the
        copies, so that is a generation before the end). Listed instances count one each, copied or skipped.
        """
        pending, listed = self.identifiers, 0
        if self.prefetched is not None:  # listed already: its instances and the identifiers that matched nothing
            pending = pending[self.prefetched.consumed:]
            listed = sum(len(batch) for batch in self.prefetched.batches) + self.prefetched.not_found
        if not all(_is_instance(identifier) for identifier in pending):
            return None
        return self.exported + self.skipped + listed + len(pending)

    def expand_input(self) -> ExpandWork:
        """What the expand activity needs for the next generation (the identifiers it can reach)."""
        reach = self.batching.batch_size * self.batching.max_parallel_batches
        return ExpandWork(self.operation_id, self.destination, self.identifiers[:reach], self.cursor,
                          self.batching.batch_size, self.batching.max_parallel_batches,
                          self.batching.max_parallel_threads, self.deidentification,
                          tuple(self.search["queries"]) if self.search else (), self.partition)

    def copy_input(self, batch: tuple[list, ...], number: int, generation: int | None = None) -> CopyWork:
        """What the copy activity needs for batch `number` of this generation, or of a later one listed ahead
        (its place names its manifest block)."""
        return CopyWork(self.operation_id, self.destination, tuple(batch), self.batching.max_parallel_threads,
                        generation or self.generation, number, self.deidentification, self.output, self.partition)

    def commit_input(self, failed: bool = False) -> CommitWork:
        """What the commit activity needs at the end; after a failure or a cancel, only the generations that
        completed (this checkpoint's generation is the one that did not)."""
        dropped = sum(d for _, d in self.search["counts"]) if self.search else 0
        return CommitWork(self.operation_id, self.destination, self.output, dropped,
                          self.generation if failed else None, (self.deidentification or {}).get("linkage"))

    def failed(self, reason: str) -> Checkpoint:
        """This checkpoint, marked as the one whose generation failed for `reason`; retrying clears the mark."""
        return replace(self, failure=reason)

    def listed(self, expansion: Expanded) -> Checkpoint:
        """What is left once `expansion` (of this checkpoint's identifiers) is taken."""
        return replace(self, identifiers=self.identifiers[expansion.consumed:], cursor=expansion.cursor,
                       prefetched=None)

    def advance(self, expansion: Expanded, copies: list[Copied], prefetched: Expanded | None = None) -> Checkpoint:
        """The checkpoint after a generation that expanded `expansion` and copied `copies`.

        `prefetched` is the next generation's expansion when it was listed during the copies.
        """
        return replace(
            self.listed(expansion),
            exported=self.exported + sum(c.exported for c in copies),
            skipped=self.skipped + expansion.not_found + sum(c.skipped for c in copies),
            generation=self.generation + 1,
            prefetched=prefetched,
            search=self._searched(expansion.searched or {}),
        )

    def _searched(self, counts: dict[str, list[int]]) -> dict[str, Any] | None:
        """`search` with the counts of one expansion added."""
        if not self.search:
            return None
        totals = [[s + counts.get(str(n), [0, 0])[0], d + counts.get(str(n), [0, 0])[1]]
                  for n, (s, d) in enumerate(self.search["counts"])]
        return {**self.search, "counts": totals}

    def to_json(self) -> dict[str, Any]:
        return {
            "operationId": self.operation_id, "identifiers": list(self.identifiers), "cursor": self.cursor,
            "destination": self.destination, "batching": asdict(self.batching),
            "createdTime": self.created_time, "errorHref": self.error_href,
            "exported": self.exported, "skipped": self.skipped, "generation": self.generation,
            "requestDigest": self.request_digest,
            "prefetched": self.prefetched.to_json() if self.prefetched is not None else None,
            "deidentification": self.deidentification, "search": self.search, "output": self.output,
            "failure": self.failure, **({"partition": self.partition} if self.partition else {}),
            **({"lanes": self.lanes} if self.lanes != 1 else {}), **({"lane": self.lane} if self.lane is not None else {}),
            **({"laneInputs": list(self.lane_inputs)} if self.lane_inputs else {}),
            **({"notification": self.notification} if self.notification else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(
            operation_id=data["operationId"], identifiers=tuple(data["identifiers"]), cursor=data.get("cursor"),
            destination=data["destination"], batching=Batching(**data["batching"]),
            created_time=data["createdTime"], error_href=data["errorHref"],
            exported=data.get("exported", 0), skipped=data.get("skipped", 0),
            generation=data.get("generation", 1), request_digest=data.get("requestDigest"),
            prefetched=Expanded.from_json(data["prefetched"]) if data.get("prefetched") else None,
            deidentification=data.get("deidentification"), search=data.get("search"), output=data.get("output"),
            failure=data.get("failure"), partition=data.get("partition"), lanes=data.get("lanes", 1),
            lane=data.get("lane"), lane_inputs=tuple(data.get("laneInputs") or ()), notification=data.get("notification"),
        )


def counted(checkpoint: Checkpoint, status: Any) -> Checkpoint:
    """A run's input `checkpoint` as far as the custom `status` it last published counts: within a run the window
    counts further generations, and a cancel commits the manifest blocks of every generation the status counts."""
    published = status.get("generation") if isinstance(status, dict) else None
    if isinstance(published, int) and published > checkpoint.generation:
        return replace(checkpoint, generation=published)
    return checkpoint


def _is_instance(identifier: str) -> bool:
    """A `study/series/sop` identifier of the checkpoint (not a study, a series, WHOLE_STORE or a QUERY)."""
    return identifier.count("/") == 2
