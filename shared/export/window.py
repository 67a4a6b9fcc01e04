"""The sliding window of one run of the export orchestration: what to start next, and what is counted.

A run keeps `MaxParallelBatches` copy batches in flight and starts the next as each one finishes, while one
expand lists the generation after the ones it has (a generation is what one expand lists: at most
MaxParallelBatches batches, numbered from the checkpoint's generation on). Batches of later generations may
finish first; a generation is counted only once it and every generation before it are copied, so the counts,
the manifest blocks a failed or canceled export commits (those of the generations before `counted.generation`)
and the checkpoint a retry starts from always agree, as they did when every generation ran in lock-step.

A run starts the batches of at most `generations` generations, then drains and hands over with `resume()`
(the orchestrator continues as new with it): the expand of the generation after them is the next run's
`prefetched`. Plain data in and out, no durable API: the orchestrator (orchestrations/export.py) drives it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from shared.export.checkpoint import Checkpoint
from shared.export.work import Copied, Expanded


@dataclass(frozen=True)
class Step:
    """One activity call of the window: `key` is ("expand", generation) or ("copy", generation, batch)."""

    key: tuple[Any, ...]
    input: dict[str, Any]


@dataclass
class _Listed:
    expansion: Expanded
    copied: dict[int, Copied] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.copied) == len(self.expansion.batches)


class Window:
    """One run's plan over `checkpoint`: at most `generations` generations copied, `width` batches at once."""

    def __init__(self, checkpoint: Checkpoint, generations: int):
        self.counted = replace(checkpoint, prefetched=None)  # every generation before counted.generation copied
        self.rest = checkpoint  # what is left to list
        self.limit = checkpoint.generation + generations  # the first generation this run lists but does not copy
        self.width = checkpoint.batching.max_parallel_batches
        self.listed: list[_Listed] = []  # generations counted.generation, +1, ... listed and not yet counted
        self.queue: deque[tuple[int, int]] = deque()  # (generation, batch) listed, not started
        self.listing = False
        self.copying = 0
        if checkpoint.prefetched is not None:
            self._add(checkpoint.prefetched)

    @property
    def busy(self) -> bool:
        """A call of `ready()` has not returned yet."""
        return self.listing or self.copying > 0

    @property
    def finished(self) -> bool:
        """Everything listed and copied: the export can commit."""
        return self.rest.done and not self.listed and not self.listing and not self.copying

    def ready(self) -> list[Step]:
        """The calls to start now: copies while fewer than `width` run, then the next listing while fewer than a
        window of batches waits for a slot."""
        steps = []
        while self.queue and self.copying < self.width:
            generation, batch = self.queue.popleft()
            self.copying += 1
            work = self.counted.copy_input(self._generation(generation).expansion.batches[batch], batch, generation)
            steps.append(Step(("copy", generation, batch), work.to_json()))
        following = self.counted.generation + len(self.listed)
        if not self.listing and not self.rest.done and following <= self.limit and len(self.queue) < self.width:
            self.listing = True
            steps.append(Step(("expand", following), self.rest.expand_input().to_json()))
        return steps

    def done(self, step: Step, result: dict[str, Any]) -> None:
        """A call of `ready()` returned `result`."""
        if step.key[0] == "expand":
            self.listing = False
            self._add(Expanded.from_json(result))
        else:
            _, generation, batch = step.key
            self.copying -= 1
            self._generation(generation).copied[batch] = Copied.from_json(result)
        self._count()

    def resume(self) -> Checkpoint:
        """Where the next run (or a retry) starts: the counted checkpoint, with the first generation it has not
        counted as its prefetched listing when it was listed."""
        return replace(self.counted, prefetched=self.listed[0].expansion if self.listed else None)

    def _add(self, expansion: Expanded) -> None:
        generation = self.counted.generation + len(self.listed)
        self.listed.append(_Listed(expansion))
        self.rest = self.rest.listed(expansion)
        if generation < self.limit:
            self.queue.extend((generation, batch) for batch in range(len(expansion.batches)))

    def _generation(self, generation: int) -> _Listed:
        return self.listed[generation - self.counted.generation]

    def _count(self) -> None:
        """Count every leading generation that is copied (an empty one at once), in order."""
        while self.listed and self.counted.generation < self.limit and self.listed[0].complete:
            first = self.listed.pop(0)
            self.counted = self.counted.advance(first.expansion, [first.copied[b] for b in sorted(first.copied)])
