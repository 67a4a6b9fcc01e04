"""The one HTTP session a worker keeps per DICOMweb server: pooled, retrying politely, authenticated.

urllib3 retries what a retry can fix before any byte of the reply is used: refused connections,
and 429/502/503/504 answers, waiting as the server's `Retry-After` says (else backing off). What is
still wrong after that reaches the export's error policy. Credentials travel only in the
`Authorization` header, never in a URL, so no error message or log line can carry them.
"""

from __future__ import annotations

import threading
import time

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth
from urllib3.util.retry import Retry

from shared.connection_pool import POOL_SIZE
from shared.stores.dicomweb.settings import DicomWebSettings

RETRY = Retry(
    total=4, connect=3, read=2, status=3, backoff_factor=0.5, status_forcelist=(429, 502, 503, 504),
    allowed_methods=frozenset({"GET"}), respect_retry_after_header=True, raise_on_status=False,
)
RENEW_BEFORE_SECONDS = 300  # a managed identity token is renewed this long before it expires


class BearerToken(AuthBase):
    """`Authorization: Bearer <token>` with a fixed token (e.g. Google Cloud's, from a secret)."""

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


class IdentityToken(AuthBase):
    """A bearer token from azure-identity for `scope`, fetched once and renewed before it expires."""

    def __init__(self, credential, scope: str):
        self._credential, self._scope = credential, scope
        self._token, self._expires_on = "", 0.0
        self._lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        with self._lock:
            if time.time() > self._expires_on - RENEW_BEFORE_SECONDS:
                fresh = self._credential.get_token(self._scope)
                self._token, self._expires_on = fresh.token, fresh.expires_on
            request.headers["Authorization"] = f"Bearer {self._token}"
        return request


def authentication(config: DicomWebSettings) -> AuthBase | None:
    if config.authentication == "basic":
        return HTTPBasicAuth(config.username or "", config.password or "")
    if config.authentication == "bearer":
        return BearerToken(config.token or "")
    if config.authentication == "managedIdentity":
        from shared import credentials

        return IdentityToken(credentials.managed_identity_credential(), config.scope)
    return None


def dicomweb_session(config: DicomWebSettings) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=POOL_SIZE, max_retries=RETRY)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.auth = authentication(config)
    return session
