"""Data partitions of a DICOMweb server, in the Azure DICOM service's form: `{base}/partitions/{name}/studies…`.

A deployment says its server has them with `DicomStore__DataPartitions=true`. Names are checked as the
service checks them (dicom-server's PartitionNameValidator: not blank, at most 64 characters, only
letters, digits, `_`, `.` and `-`), plus `.` and `..`, which that rule admits but no URL can address (they
are dot segments, removed from a path before it is sent). Data stored before partitions were turned on
lives in the default partition, `Microsoft.Default`, which is where an export that names none reads.
"""

from __future__ import annotations

import re

DEFAULT_PARTITION = "Microsoft.Default"
MAX_NAME = 64
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def name_problem(name: str) -> str | None:
    """Why `name` is not a partition name the service accepts, or None when it is one."""
    if not name.strip():
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long; at most {MAX_NAME} are allowed"
    if not _NAME.fullmatch(name):
        return "may hold only letters, digits, '_', '.' and '-'"
    if name in (".", ".."):
        return "cannot be '.' or '..' (a URL cannot address them)"
    return None


def partition_url(base: str, name: str) -> str:
    """The DICOMweb base URL of partition `name` of the server at `base` (a name already checked)."""
    return f"{base.rstrip('/')}/partitions/{name}"
