"""The errors of the house, in one small hierarchy, each saying whose fault it is.

- `ClientError`: the request is wrong. Its `status` is the 4xx to answer, its `field` the part at fault.
- `Misconfigured`: an app setting is missing or wrong (the operator's fault, 500); the message names it.
- `Unavailable`: the store or the destination failed for a reason that is neither the request's nor the
  file's (an outage, refused credentials, a cut reply): 503 to a client, a failed and retried activity.
- The skip-versus-fail signals of a copy: `Skipped` (this one file is skipped with an errors.log line and
  the batch goes on) and `CopyFailed` (the batch cannot go on: the activity fails, is retried, and then the
  export fails with the message as its reason).

endpoints/responses.py `error_response` turns any of them into the HTTP answer, for every endpoint, and
shared/export/destination.py `destination_faults` turns a destination's Azure SDK errors into CopyFailed.
Messages are for people and never carry a secret (shared/secrets.py `first_line` scrubs what a library said).
"""

from __future__ import annotations


class ClientError(ValueError):
    """A request the server refuses: HTTP `status`, a message naming `field`."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.field = field


class Misconfigured(ValueError):
    """An app setting is missing or wrong; the message names it."""


class Unavailable(RuntimeError):
    """The store or the destination is down or refusing us; `status_code` is its HTTP status, when it answered."""

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class Skipped(LookupError):
    """This one file cannot be copied (e.g. gone from the store since it was listed): skip it, log it, go on."""


class CopyFailed(RuntimeError):
    """The batch cannot go on: the message (already scrubbed of secrets) says why."""
