"""The export's three steps as plain functions over JSON: what the starter and the two activities run.

- `prepare`: after the request is validated, create `<op>/errors.log` in the destination (which
  also proves the container exists and the credential may write) and build the first checkpoint.
- `expand_step`: list the next identifiers (or the whole store, or the next queries) into batches; log
  identifiers that match nothing.
- `split_step`: for an export of the whole store run as lanes, the study UIDs its lanes start at (shared/export/lanes.py).
- `copy_step`: copy one batch (de-identified when the export asked for it, shared/deid/; then transcoded
  or rendered when it asked for an output, shared/outputs/), and stage its lines as its block of the
  manifest, and its metadata rows as its block of the metadata table.
- `commit_step`: once every batch is copied, commit the metadata table (if asked) and the manifest.
With `deidentification.linkage`, prepare stages the linkage table's header in the controller's
container, each copy stages its rows there, and the commit commits them (shared/export/linkage.py).
Faults of the destination surface as DestinationRefused (starter → 400) or CopyFailed (activity
→ retried, then the operation fails), always with a message free of secrets.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient, LinearRetry

from shared.connection_pool import shared_pool
from shared.deid.dataset import Deidentifier, KeyChanged
from shared.deid.pseudonyms import Pseudonyms
from shared.errors import CopyFailed, Misconfigured
from shared.export.checkpoint import QUERY, WHOLE_STORE, Batching, Checkpoint
from shared.export.copy import TRANSFER_OPTIONS, BatchCopier, store_problem
from shared.export.destination import (
    Destination,
    DestinationRefused,
    check_allowed,
    destination_faults,
    destination_problem,
)
from shared.export.errors_log import ErrorEntry, ErrorLog
from shared.export.expand import Item, Searched, expand, instance_from_json
from shared.export.manifest import LAST_BLOCK, Manifest, ManifestTooLarge, block_id
from shared.export.request import ExportRequest
from shared.export.settings import ExportSettings
from shared.export.work import Committed, CommitWork, Copied, CopyWork, Expanded, ExpandWork
from shared.outputs.metadata import MetadataTable
from shared.outputs.spec import OutputSpec
from shared.query import Query
from shared.stores.factory import open_store
from shared.stores.interface import Store, StoreError
from shared.uids import parse_identifier

from . import errors_log, events, lanes, linkage, manifest


def _fail_fast() -> LinearRetry:
    """Few, short retries: a storage request fails within seconds, not after the SDK's default minute, so the
    starter answers promptly and in activities Export__RetryOptions is the export's whole retry budget.

    A new policy for every client: azure-core chains a client's policies through the objects themselves,
    so a policy shared by two clients would send one's requests through the other's credentials.
    """
    return LinearRetry(backoff=1, random_jitter_range=1, retry_total=2)


def prepare(request: ExportRequest, operation_id: str, policy: ExportSettings, base_digest: str | None = None,
            env: Mapping[str, str] | None = None) -> Checkpoint:
    """The first checkpoint of a new export, its errors.log created; DestinationRefused if it cannot be."""
    destination = request.destination
    try:
        client = destination.container_client(env, retry_policy=_fail_fast(), connection_timeout=10, read_timeout=30)
        ErrorLog(client, operation_id).create()
    except AzureError as error:
        raise DestinationRefused(f"destination: {destination_problem(error, destination)}", "destination") from None
    deidentification = Deidentifier(request.deidentification, Pseudonyms.from_settings(env)).to_json() \
        if request.deidentification else None
    if request.linkage and deidentification:
        deidentification["linkage"] = linkage.prepare(request.linkage, operation_id, env, _fail_fast())
    return Checkpoint(
        operation_id=operation_id,
        identifiers=(tuple(f"{QUERY}{n}" for n in range(len(request.queries))) or tuple(str(i) for i in request.identifiers)
                     or (WHOLE_STORE,)),
        destination=destination.protected(env),
        batching=Batching.from_settings(policy),
        created_time=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        error_href=f"{destination.container_url}/{errors_log.blob_name(operation_id)}",
        request_digest=base_digest,
        deidentification=deidentification,
        search={"queries": [q.to_json() for q in request.queries], "counts": [[0, 0] for _ in request.queries]}
        if request.queries else None,
        output=None if request.output.plain else request.output.to_json(),
        partition=request.partition,
        lanes=policy.lanes,
        notification=request.notification.protected(env) if request.notification else None,
    )


def expand_step(work: ExpandWork, store: Store | None = None) -> Expanded:
    """The expand activity: the next batches, with the identifiers that match nothing logged as skipped."""
    try:
        queries = [Query.from_json(q) for q in work.queries]
        expansion = expand(store or _store(work.partition), [_item(i, queries) for i in work.identifiers], work.cursor,
                           work.batch_size, work.max_batches, work.threads)
    except (AzureError, StoreError) as error:  # the store is down or refusing us: the activity fails, is retried
        raise CopyFailed(store_problem(error)) from None
    if expansion.not_found:
        deidentifier = _deidentifier(work.deidentification)
        destination, client = _destination(_key(work.destination))
        entries = [ErrorEntry(str(deidentifier.identifier(i) if deidentifier else i),
                              "no instance in the store matches this identifier") for i in expansion.not_found]
        with destination_faults(destination):
            ErrorLog(client, work.operation_id).write(errors_log.listing_key(work.identifiers[0], work.cursor), entries)
    return expansion.expanded()


def split_step(count: int, store: Store | None = None) -> list[str]:
    """The split activity of an export of the whole store run as `count` lanes: the study bounds of its lanes."""
    try:
        return lanes.study_bounds(lanes.count_studies(store or _store()), count)
    except (AzureError, StoreError) as error:  # as an expand's: the activity fails, is retried
        raise CopyFailed(store_problem(error)) from None


def copy_step(work: CopyWork, store: Store | None = None) -> Copied:
    """The copy activity: one batch copied and its manifest block staged. Logs one `export.batch` line
    (shared/export/events.py), also for an attempt that fails."""
    with events.timed_batch(operationId=work.operation_id, generation=work.generation, batch=work.batch,
                            instances=len(work.instances)) as logged:
        copied = _copy_batch(work, store)
        logged.update(copied.to_json())
    return copied


def _copy_batch(work: CopyWork, store: Store | None) -> Copied:
    destination, client = _destination(_key(work.destination))
    linked = (work.deidentification or {}).get("linkage")
    copier = BatchCopier(
        store or _store(work.partition), client, work.operation_id,
        describe_fault=lambda error: destination_problem(error, destination),
        mode=ExportSettings.from_settings().copy_mode, threads=work.threads,
        deidentifier=_deidentifier(work.deidentification), output=OutputSpec.from_json(work.output),
        linkage=linked is not None,
    )
    result = copier.copy([instance_from_json(i) for i in work.instances], errors_log.batch_key(work.generation, work.batch))
    block = block_id(work.generation, work.batch)
    if linked is not None:  # to the controller's container only
        linkage.stage(_destination(_key(linked)), work.operation_id, block, result.links)
    with destination_faults(destination):
        Manifest(client, work.operation_id).stage(block, result.lines)
        MetadataTable(client, work.operation_id).stage(block, result.rows)
    return Copied(result.exported, result.skipped)


def commit_step(work: CommitWork) -> Committed:
    """The last activity of an export: the metadata table and the manifest committed, where the manifest is
    (no credentials), its digest and size.

    `work.before_generation`, when an export failed or is canceled: only what its completed generations wrote,
    and no metadata table (it is written when the export completes, after a retry).
    """
    destination, client = _destination(_key(work.destination))
    output = OutputSpec.from_json(work.output)
    try:
        with destination_faults(destination):
            ended = not work.partial  # completed: not a failed or canceled export's partial commit
            if work.dropped and ended:
                ErrorLog(client, work.operation_id).write("query dropped rows", [ErrorEntry(
                    "query", f"the store returned {work.dropped} rows that do not match their query "
                    "(a filter it ignored or matched loosely); they were left out")])
            if output.metadata_formats and ended:  # its files join the manifest as its last block
                table = MetadataTable(client, work.operation_id).commit(output.metadata_formats,
                                                                        output.metadata_attributes)
                Manifest(client, work.operation_id).stage(LAST_BLOCK, [manifest.line(d.sha256, name)
                                                                       for name, d in table.items()])
            if work.linkage is not None:  # what the manifest lists, also after a failure or a cancel
                linkage.commit(_destination(_key(work.linkage)), work.operation_id, work.before_generation,
                               work.lane_ends)
            digest = Manifest(client, work.operation_id).commit(work.before_generation, work.lane_ends)
    except ManifestTooLarge as error:
        raise CopyFailed(str(error)) from None
    return Committed(f"{destination.container_url}/{manifest.blob_name(work.operation_id)}", digest.sha256,
                     digest.size)


def _deidentifier(data: dict | None) -> Deidentifier | None:
    """The export's de-identifier (None for a plain copy); CopyFailed if the key changed since it started."""
    try:
        return Deidentifier.from_json(data) if data else None
    except KeyChanged as changed:
        raise CopyFailed(str(changed)) from None


def _item(text: str, queries: list[Query]) -> Item:
    """What one checkpoint identifier stands for: the whole store, query n, or a study/series/instance."""
    if text == WHOLE_STORE:
        return None
    if text.startswith(WHOLE_STORE):  # a lane's part of the whole store
        return lanes.parse_range(text)
    if text.startswith(QUERY):
        n = int(text[len(QUERY):])
        return Searched(n, queries[n], tuple(queries[:n]))
    return parse_identifier(text)


def _store(partition: str | None = None) -> Store:
    """The store the app settings name (its data `partition`, if any); CopyFailed naming the setting when they
    are wrong."""
    try:
        return _open_store(partition)
    except Misconfigured as misconfigured:
        raise CopyFailed(f"the server is misconfigured: {misconfigured}") from None


@functools.cache
def _open_store(partition: str | None) -> Store:
    """One store client (and connection pool) per worker process and data partition."""
    return open_store(partition=partition, retry_policy=_fail_fast())


def _key(protected: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A protected destination (flat JSON) as a key of the client cache."""
    return tuple(sorted(protected.items()))


@functools.lru_cache(maxsize=32)
def _destination(protected: tuple[tuple[str, Any], ...]) -> tuple[Destination, ContainerClient]:
    """The destination and a client for it, reused by every batch of the same export in this process."""
    destination = Destination.from_protected(dict(protected))
    check_allowed(destination, ExportSettings.from_settings())
    return destination, destination.container_client(**shared_pool(), retry_policy=_fail_fast(),
                                                     **TRANSFER_OPTIONS)
