"""Export tuning and policy, read from app settings once per request or activity.

Every knob has the published server's default and can be changed per deployment:

| Setting                                          | Default | Meaning |
| :----------------------------------------------- | :------ | :------ |
| `Export__BatchSize`                              | 100     | instances per copy activity |
| `Export__MaxParallelBatches`                     | 10      | copy activities in flight (the window), batches per generation |
| `Export__MaxParallelThreads`                     | 5       | concurrent file copies inside one copy activity |
| `Export__RetryOptions__MaxNumberOfAttempts`      | 4       | attempts per activity, the first included |
| `Export__RetryOptions__FirstRetryIntervalSeconds`| 60      | wait before the first retry (seconds, fractions allowed) |
| `Export__RetryOptions__BackoffCoefficient`       | 3       | each further wait is this many times the previous one |
| `Export__MaxRequestBytes`                        | 1048576 | largest accepted POST /export body (413 above) |
| `Export__AllowSasTokens`                         | true    | accept SAS tokens in the destination |
| `Export__AllowPublicAccess`                      | false   | accept a destination without any credential |
| `Export__AllowEmulator`                          | false   | accept the local storage emulator on a loopback address |
| `Export__AllowedHostSuffixes`                    | Azure   | comma-separated blob endpoint suffixes destinations may use |
| `Export__CopyMode`                               | stream  | stream, server or auto (see shared/export/copy.py) |
| `Export__Lanes`                                  | 1       | sub-orchestrations one export is split into (shared/export/lanes.py) |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared import settings
from shared.errors import Misconfigured

AZURE_BLOB_SUFFIXES = (
    "blob.core.windows.net",
    "blob.core.chinacloudapi.cn",
    "blob.core.usgovcloudapi.net",
    "blob.core.cloudapi.de",
)
COPY_MODES = ("stream", "server", "auto")
MAX_LANES = 100  # each lane numbers its generations in a range of its own (shared/export/manifest.py)


@dataclass(frozen=True)
class ExportSettings:
    batch_size: int = 100
    max_parallel_batches: int = 10
    max_parallel_threads: int = 5
    retry_attempts: int = 4
    first_retry_seconds: float = 60.0
    backoff_coefficient: float = 3.0
    max_request_bytes: int = 1024 * 1024
    allow_sas_tokens: bool = True
    allow_public_access: bool = False
    allow_emulator: bool = False
    allowed_host_suffixes: tuple[str, ...] = AZURE_BLOB_SUFFIXES
    copy_mode: str = "stream"
    lanes: int = 1

    @classmethod
    def from_settings(cls, env: Mapping[str, str] | None = None) -> ExportSettings:
        """The settings in effect; Misconfigured names a setting that is out of range."""
        suffixes = settings.get("Export__AllowedHostSuffixes", None, env)
        found = cls(
            batch_size=settings.get_int("Export__BatchSize", cls.batch_size, env),
            max_parallel_batches=settings.get_int("Export__MaxParallelBatches", cls.max_parallel_batches, env),
            max_parallel_threads=settings.get_int("Export__MaxParallelThreads", cls.max_parallel_threads, env),
            retry_attempts=settings.get_int(
                "Export__RetryOptions__MaxNumberOfAttempts", cls.retry_attempts, env),
            first_retry_seconds=settings.get_float(
                "Export__RetryOptions__FirstRetryIntervalSeconds", cls.first_retry_seconds, env),
            backoff_coefficient=settings.get_float(
                "Export__RetryOptions__BackoffCoefficient", cls.backoff_coefficient, env),
            max_request_bytes=settings.get_int("Export__MaxRequestBytes", cls.max_request_bytes, env),
            allow_sas_tokens=settings.get_bool("Export__AllowSasTokens", cls.allow_sas_tokens, env),
            allow_public_access=settings.get_bool("Export__AllowPublicAccess", cls.allow_public_access, env),
            allow_emulator=settings.get_bool("Export__AllowEmulator", cls.allow_emulator, env),
            allowed_host_suffixes=_suffixes(suffixes) if suffixes else AZURE_BLOB_SUFFIXES,
            copy_mode=(settings.get("Export__CopyMode", cls.copy_mode, env) or cls.copy_mode).strip().lower(),
            lanes=settings.get_int("Export__Lanes", cls.lanes, env),
        )
        found._check()
        return found

    def _check(self) -> None:
        at_least_one = {
            "Export__BatchSize": self.batch_size,
            "Export__MaxParallelBatches": self.max_parallel_batches,
            "Export__MaxParallelThreads": self.max_parallel_threads,
            "Export__RetryOptions__MaxNumberOfAttempts": self.retry_attempts,
            "Export__MaxRequestBytes": self.max_request_bytes,
        }
        for name, value in at_least_one.items():
            if value < 1:
                raise Misconfigured(f"setting {name} must be at least 1, not {value}")
        if self.first_retry_seconds <= 0:
            raise Misconfigured("setting Export__RetryOptions__FirstRetryIntervalSeconds must be above 0")
        if self.backoff_coefficient < 1:
            raise Misconfigured("setting Export__RetryOptions__BackoffCoefficient must be at least 1")
        if not 1 <= self.lanes <= MAX_LANES:
            raise Misconfigured(f"setting Export__Lanes must be from 1 to {MAX_LANES}, not {self.lanes}")
        if self.copy_mode not in COPY_MODES:
            raise Misconfigured(f"setting Export__CopyMode must be one of {', '.join(COPY_MODES)}")


def _suffixes(text: str) -> tuple[str, ...]:
    return tuple(s.strip().lower().lstrip(".") for s in text.replace(";", ",").split(",") if s.strip())
