"""Keyed, deterministic pseudonyms: the same original and key give the same pseudonym in every export.

That keeps longitudinal research possible (a patient exported again next year gets the same
pseudonym and study UIDs), while without the key nothing can be linked back: every pseudonym is
an HMAC-SHA256 of the original under the key, each kind of value in its own domain.

- UIDs become `2.25.<decimal of 128 bits of the HMAC>` (at most 44 characters, PS3.5 B.2).
- Patient ID and name become `ANON` + 16 base-32 characters of the HMAC of the patient's ID.
- Dates move back by a per-patient offset of 1 to 3 650 days (intervals kept).

The key is the app setting `Export__Deidentification__Key` (in Azure a Key Vault reference); where it
is not set, a random key is created on first use in `Export__Deidentification__KeyFile` (default
`.secrets/deidentification.key`, gitignored), like `Export__SecretKey`. Rotating the key gives every
patient and UID new pseudonyms: exports before and after no longer link. The key never leaves the
activities: the orchestration carries only `key_id`, a keyed fingerprint that says whether the key
changed during an export.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path

from shared import settings
from shared.secrets import key_file
from shared.uids import Identifier

SETTING = "Export__Deidentification__Key"
FILE_SETTING = "Export__Deidentification__KeyFile"
DEFAULT_KEY_FILE = Path(__file__).resolve().parent.parent.parent / ".secrets" / "deidentification.key"
MAX_DATE_OFFSET_DAYS = 3650


class Pseudonyms:
    """The pseudonyms of one key."""

    def __init__(self, key: bytes):
        if not key:
            raise ValueError(f"setting {SETTING} is empty")
        self._key = key

    @classmethod
    def from_settings(cls, env: Mapping[str, str] | None = None) -> Pseudonyms:
        configured = (settings.get(SETTING, None, env) or "").strip()
        if configured:
            return cls(configured.encode())
        return cls(key_file(Path(settings.get(FILE_SETTING, None, env) or DEFAULT_KEY_FILE), SETTING))

    def _mac(self, domain: str, value: str) -> bytes:
        return hmac.new(self._key, f"{domain}\0{value}".encode(), hashlib.sha256).digest()

    @property
    def key_id(self) -> str:
        """A fingerprint of the key that reveals nothing of it."""
        return self._mac("key-id", "").hex()[:16]

    def uid(self, uid: str) -> str:
        """The pseudonym UID of `uid` (surrounding spaces and padding ignored)."""
        return "2.25." + str(int.from_bytes(self._mac("uid", uid.strip(" \0"))[:16], "big"))

    def patient(self, patient_id: str) -> str:
        """The pseudonym of a patient, used as both Patient ID and Patient's Name."""
        return "ANON" + base64.b32encode(self._mac("patient", patient_id.strip()))[:16].decode()

    def date_offset_days(self, patient_id: str) -> int:
        """How many days this patient's dates move back (1 to MAX_DATE_OFFSET_DAYS)."""
        return 1 + int.from_bytes(self._mac("date-offset", patient_id.strip())[:4], "big") % MAX_DATE_OFFSET_DAYS

    def identifier(self, identifier: Identifier) -> Identifier:
        """`study[/series[/sop]]` with each UID replaced: how a de-identified export names it."""
        return Identifier(*(self.uid(part) for part in identifier.parts))
