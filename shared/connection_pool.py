"""HTTP sessions whose connection pool is as large as the copies that share it.

azure-core's requests transport keeps at most 10 connections per host. The export's copy threads
share one client per container in a worker (the store's, and one per destination), so with the
default 10 activities × 5 threads most requests found no idle connection, opened their own (in
Azure a TCP and TLS handshake per request) and dropped it afterwards ("Connection pool is full").
"""

from __future__ import annotations

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
