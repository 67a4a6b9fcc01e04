"""The associations one worker process holds with the PACS: reused, bounded, released when idle.

An association is leased for one operation (a listing's C-FINDs, or one instance's C-GET) and handed
back, so the copy threads of a batch reuse a few associations instead of opening one per instance.
At most `DicomStore__MaxAssociations` are open at once (idle ones included); a lease waits for one.
An association idle for `IDLE_SECONDS` is released by a background thread, every one is released at
exit, and one whose operation failed is aborted, never handed out again: the PACS is never left with
a half-open association. The same thread wakes an operation whose association died under it (a PACS
killed mid-transfer, or silent for `DicomStore__TimeoutSeconds`): pynetdicom would wait for its
answer forever, as there is no limit on how long one large instance may take to arrive.

Each association proposes, besides Study Root C-FIND and C-GET, the storage SOP classes it is to
receive with SCP role selection, each class once per transfer syntax (`TRANSFER_SYNTAXES`, each in
its own presentation context): the PACS then finds a context for the syntax it stores and sends the
instance as it is, never transcoded. The 128 contexts an association may propose hold
`CLASSES_PER_ASSOCIATION` storage classes this way, so a lease for a class the idle associations lack
opens a new one proposing it with the classes used most recently.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from pydicom.uid import UID, AllTransferSyntaxes
from pynetdicom import AE, _config, build_context, build_role, evt
from pynetdicom.association import Association

from shared.stores.dimse.settings import DimseSettings
from shared.stores.interface import StoreError

# Received instances go to a temporary file as their fragments arrive, never whole into memory.
_config.STORE_RECV_CHUNKED_DATASET = True

FIND = UID("1.2.840.10008.5.1.4.1.2.2.1")  # Study Root Query/Retrieve Information Model - FIND
GET = UID("1.2.840.10008.5.1.4.1.2.2.3")  # Study Root Query/Retrieve Information Model - GET
TRANSFER_SYNTAXES = tuple(AllTransferSyntaxes)
CLASSES_PER_ASSOCIATION = (128 - 2) // len(TRANSFER_SYNTAXES)
IDLE_SECONDS = 5.0  # an association unused this long is released (PACS close idle ones after ~30 s)
MAX_PDU = 1024 * 1024  # the largest PDU the PACS may send us


class Dropped(StoreError):
    """The association ended under the operation (aborted, timed out, closed by the PACS)."""


@dataclass(eq=False)
class Lease:
    """One open association, the storage classes it can receive, and where its received instance goes."""

    association: Association
    classes: frozenset[str]
    reused: bool = False
    expected: str | None = None  # the SOP Instance UID a C-GET is waiting for
    received: IO[bytes] | None = None
    failed: bool = False
    idle_since: float = field(default_factory=time.monotonic)

    def on_store(self, event: evt.Event) -> int:
        """A C-STORE sub-operation of our C-GET: keep the file pynetdicom wrote (File Meta built from the
        presentation context it came on) open and unlinked, so it vanishes however the copy ends."""
        path = event.dataset_path
        try:
            if getattr(event.request, "AffectedSOPInstanceUID", None) != self.expected or self.received is not None:
                return 0xA900  # not the instance asked for: refused, and the C-GET fails
            self.received = open(path, "rb")  # noqa: SIM115 - handed to the reader, which closes it
            return 0x0000
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)  # pynetdicom leaves the file of a C-GET's sub-operation behind

    def take(self) -> IO[bytes] | None:
        received, self.received, self.expected = self.received, None, None
        return received


class Associations:
    def __init__(self, config: DimseSettings):
        self.config = config
        self._ae = AE(ae_title=config.calling_ae_title)
        self._ae.connection_timeout = self._ae.acse_timeout = config.connect_timeout
        self._ae.network_timeout = config.timeout
        self._ae.dimse_timeout = None  # a large instance takes as long as it takes; silence is network_timeout's
        self._idle: list[Lease] = []
        self._busy: set[Lease] = set()
        self._open = 0
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._changed = threading.Condition()
        self._closed = False
        _POOLS.add(self)
        threading.Thread(target=_reap, args=(weakref.ref(self),), daemon=True, name="dimse-idle").start()

    @property
    def open_count(self) -> int:
        return self._open

    @contextlib.contextmanager
    def lease(self, sop_class: str | None = None) -> Iterator[Lease]:
        """An association able to receive `sop_class` (None: any, for C-FIND), for one operation.

        It returns to the pool when the operation ends well, and is aborted when it raises."""
        lease = self._checkout(sop_class)
        try:
            yield lease
        except BaseException:
            lease.failed = True
            raise
        finally:
            self._checkin(lease)

    def close(self) -> None:
        """Release every idle association; the pool opens no more."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
        for lease in idle:
            self._end(lease)

    def release_idle(self, older_than: float) -> None:
        now = time.monotonic()
        with self._changed:
            stale = [lease for lease in self._idle if now - lease.idle_since >= older_than]
            self._idle = [lease for lease in self._idle if lease not in stale]
        for lease in stale:
            self._end(lease)

    def wake_orphans(self) -> None:
        """End the wait of every operation whose association's thread has ended (pynetdicom's "no answer")."""
        with self._changed:
            dead = [lease for lease in self._busy if not lease.association.is_alive() and not lease.failed]
        for lease in dead:
            lease.failed = True
            lease.association.dimse.msg_queue.put((None, None))

    def _checkout(self, sop_class: str | None) -> Lease:
        evicted: Lease | None = None
        with self._changed:
            if sop_class:
                self._recent[sop_class] = None
                self._recent.move_to_end(sop_class)
                while len(self._recent) > CLASSES_PER_ASSOCIATION:
                    self._recent.popitem(last=False)
            while True:
                if self._closed:
                    raise StoreError("the DIMSE store is closed")
                for lease in reversed(self._idle):
                    if sop_class is None or sop_class in lease.classes:
                        self._idle.remove(lease)
                        lease.reused = True
                        break
                else:
                    lease = None  # type: ignore[assignment]
                if lease is not None:
                    if lease.association.is_established:
                        self._busy.add(lease)
                        return lease
                    self._open -= 1  # closed by the PACS while idle
                    continue
                if self._open < self.config.max_associations:
                    self._open += 1
                    break
                if self._idle:  # all slots held, some idle with other classes: replace the oldest
                    evicted = self._idle.pop(0)
                    break
                self._changed.wait()
            classes = frozenset(self._recent) | ({sop_class} if sop_class else frozenset())
        if evicted is not None:
            self._end(evicted, count=False)
        try:
            lease = self._associate(classes)
            with self._changed:
                self._busy.add(lease)
            return lease
        except BaseException:
            with self._changed:
                self._open -= 1
                self._changed.notify()
            raise

    def _checkin(self, lease: Lease) -> None:
        with self._changed:
            self._busy.discard(lease)
        stray = lease.take()
        if stray is not None:
            stray.close()
        if lease.failed or not lease.association.is_established or self._closed:
            self._end(lease)
            return
        lease.idle_since = time.monotonic()
        with self._changed:
            self._idle.append(lease)
            self._changed.notify()

    def _end(self, lease: Lease, count: bool = True) -> None:
        """Release the association (abort it after a failure); its slot is free again unless `count` is False."""
        association = lease.association
        try:
            if association.is_established:
                if lease.failed:
                    association.abort()
                else:
                    association.release()
        finally:
            if count:
                with self._changed:
                    self._open -= 1
                    self._changed.notify()

    def _associate(self, classes: frozenset[str]) -> Lease:
        config = self.config
        contexts = [build_context(FIND), build_context(GET)]
        contexts += [build_context(c, [syntax]) for c in sorted(classes) for syntax in TRANSFER_SYNTAXES]
        reason: list[str] = []

        def on_response(event: evt.Event) -> None:
            primitive: Any = getattr(event, "primitive", None)
            if getattr(primitive, "result", None) in (0x01, 0x02):
                reason.append(f"{primitive.reason_str} ({primitive.source_str}, {primitive.result_str})")

        context = config.ssl_context()
        holder: list[Lease] = []
        association = self._ae.associate(
            config.host, config.port, contexts=contexts, ae_title=config.called_ae_title, max_pdu=MAX_PDU,
            ext_neg=[build_role(c, scp_role=True) for c in sorted(classes)],
            tls_args=(context, config.tls_server_name or config.host) if context else None,
            evt_handlers=[(evt.EVT_ACSE_RECV, on_response), (evt.EVT_C_STORE, lambda e: holder[0].on_store(e))],
        )
        if association.is_established:
            lease = Lease(association, classes)
            holder.append(lease)
            return lease
        if association.is_rejected:
            raise StoreError(
                f"the PACS at {config.address} refused the association: {'; '.join(reason) or 'no reason given'} "
                f"(called AE title {config.called_ae_title!r}, calling AE title {config.calling_ae_title!r}: check "
                "DicomStore__CalledAETitle, DicomStore__CallingAETitle and that the PACS knows the calling AE)")
        raise StoreError(f"no association with the PACS at {config.address}: it could not be reached, closed the "
                         "connection, or accepted none of the proposed services (connect timeout "
                         f"{config.connect_timeout:g} s{', TLS' if context else ''})")


_POOLS: weakref.WeakSet[Associations] = weakref.WeakSet()


def _reap(pool_ref: weakref.ref[Associations]) -> None:
    """Release the pool's idle associations and wake orphaned operations now and then, while the pool exists."""
    while (pool := pool_ref()) is not None and not pool._closed:
        pool.release_idle(IDLE_SECONDS)
        pool.wake_orphans()
        del pool
        time.sleep(IDLE_SECONDS / 5)


@atexit.register
def _release_all() -> None:
    for pool in list(_POOLS):
        pool.close()
