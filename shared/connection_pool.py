"""One HTTP session per worker for the storage clients, its pools as large as the copies sharing them.

azure-core's requests transport keeps at most 10 connections per host. The export's copy threads
share one client per container in a worker (the store's, and one per destination), so with the
default 10 activities × 5 threads most requests found no idle connection, opened their own (in
Azure a TCP and TLS handshake per request) and dropped it afterwards ("Connection pool is full").
All those clients share one session: an export to a new container reuses the account's idle
connections instead of keeping a pool of its own, so a worker holds at most POOL_SIZE idle
connections per storage host however many exports it has served.
"""

from __future__ import annotations

import functools
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

# Connections kept per host: room for maxConcurrentActivityFunctions (10) × MaxParallelThreads, twice over.
POOL_SIZE = 100


def pooled_session(size: int = POOL_SIZE) -> requests.Session:
    """A session for a storage client (`session=`); retries are left to the SDK, as in azure-core's own."""
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_maxsize=size, max_retries=Retry(total=False, redirect=False, raise_on_status=False)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def shared_pool() -> dict[str, Any]:
    """Options for a storage client (`ContainerClient(..., **shared_pool())`) to use the worker's one session."""
    return {"session": _shared_session(), "session_owner": False}  # closing one client must not close it


@functools.cache
def _shared_session() -> requests.Session:
    return pooled_session()
