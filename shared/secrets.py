"""Keeping destination secrets (SAS tokens, account keys) out of the task hub, logs and responses.

`protect` encrypts a secret with Fernet (AES-128-CBC + HMAC-SHA256) before it enters the
orchestration input; only activities `unprotect` it, right before talking to the destination.
`scrub` removes anything that looks like a secret from text (storage SDK errors quote URLs).

Where the key comes from, first match wins:
1. `Export__SecretKey`: one or more Fernet keys, comma-separated (the first encrypts, all
   decrypt, so a key can be rotated). In Azure, make it a Key Vault reference:
   `@Microsoft.KeyVault(SecretUri=https://<vault>.vault.azure.net/secrets/<name>)`.
   Generate one with `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.
2. Otherwise the key file `Export__SecretKeyFile`, by default `.secrets/export.key` in the app
   folder (gitignored). It is created with a random key on first use, readable by its owner
   only, and shared by every process of the app on this machine. Where the app folder is
   read-only (Azure runs from a package) this fails with a message asking for setting 1.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared import settings
from shared.errors import Misconfigured

DEFAULT_KEY_FILE = Path(__file__).resolve().parent.parent / ".secrets" / "export.key"
REDACTED = "<redacted>"

_SECRET_PATTERNS = (
    # A SAS signature, plain or percent-encoded, wherever it appears (URL, header, message).
    (re.compile(r"(?i)\b(sig(?:=|%3D))[^&\s'\"<>;,]+"), rf"\g<1>{REDACTED}"),
    # Connection-string secrets.
    (re.compile(r"(?i)\b(AccountKey=|SharedAccessSignature=)[^;\s'\"<>]+"), rf"\g<1>{REDACTED}"),
    # Bearer tokens in echoed headers.
    (re.compile(r"(?i)\b(Bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\g<1>{REDACTED}"),
)


class SecretKeyError(Misconfigured):
    """The app's secret key is missing, unusable or not the one a secret was protected with."""


def first_line(error: BaseException) -> str:
    """The first line of what `error` says (its `message` when it has one), scrubbed, at most 500 characters."""
    message = str(getattr(error, "message", None) or error).strip()
    return scrub(message.splitlines()[0] if message else type(error).__name__)[:500]


def scrub(text: object) -> str:
    """`text` as a string with SAS signatures, account keys and bearer tokens replaced by <redacted>."""
    result = str(text)
    for pattern, replacement in _SECRET_PATTERNS:
        result = pattern.sub(replacement, result)
    return result


def protect(secret: str, env: Mapping[str, str] | None = None) -> str:
    """An encrypted, URL-safe token of `secret` that only holders of the app's key can read."""
    return _fernet(env).encrypt(secret.encode()).decode("ascii")


def unprotect(token: str, env: Mapping[str, str] | None = None) -> str:
    """The secret behind a `protect` token; SecretKeyError when the key does not open it."""
    fernet = _fernet(env)  # its own SecretKeyError (a ValueError) is not this one
    try:
        return fernet.decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError):
        raise SecretKeyError(
            "the destination's credentials cannot be decrypted: Export__SecretKey changed since the export "
            "started (keep the old key after the new one in Export__SecretKey while exports run)"
        ) from None


def digest(text: str, env: Mapping[str, str] | None = None) -> str:
    """A keyed fingerprint of `text` (HMAC-SHA256): equal texts match, nothing can be read back."""
    key = _keys(env)[0]
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _fernet(env: Mapping[str, str] | None) -> MultiFernet:
    keys = _keys(env)  # its own SecretKeyError (a ValueError) is not this one
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError):
        raise SecretKeyError(
            "setting Export__SecretKey must hold Fernet keys (32 url-safe base64-encoded bytes), comma-separated"
        ) from None


def _keys(env: Mapping[str, str] | None) -> list[bytes]:
    configured = settings.get("Export__SecretKey", None, env)
    if configured and configured.strip():
        return [k.strip().encode() for k in configured.split(",") if k.strip()]
    path = Path(settings.get("Export__SecretKeyFile", None, env) or DEFAULT_KEY_FILE)
    return [key_file(path, "Export__SecretKey")]


def key_file(path: Path, setting: str) -> bytes:
    """The key in `path`, creating it with a fresh random key if no process has yet (for want of `setting`).

    The key is written to a private temporary file and hard-linked into place, so a reader
    never sees a half-written key and concurrent first uses agree on one key.
    """
    try:
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
            try:
                os.link(temporary, path)
            except FileExistsError:  # another process won the race; its key is the key
                pass
            finally:
                temporary.unlink()
        return path.read_bytes().strip()
    except OSError as error:
        raise SecretKeyError(
            f"no {setting} setting and the key file cannot be used ({error.strerror}): set {setting}"
        ) from None
