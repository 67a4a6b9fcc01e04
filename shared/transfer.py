"""How a DICOM file moves to or from a blob container, whoever owns the container: block sizes, content type.

Shared by the built-in store (shared/stores/blob/) and the export's copies and uploads (shared/export/),
so neither reaches into the other for them.
"""

from __future__ import annotations

from typing import Any

from azure.storage.blob import ContentSettings

DICOM_CONTENT = ContentSettings(content_type="application/dicom")
# Transfers move blocks of 4 MiB; an instance up to 8 MiB goes in one request. This bounds what one
# transfer holds in memory (the SDK's defaults read up to 64 MiB in one go).
BLOCK_SIZE = 4 * 1024 * 1024
SINGLE_PUT_SIZE = 8 * 1024 * 1024
TRANSFER_SIZES: dict[str, Any] = {"max_block_size": BLOCK_SIZE, "max_single_put_size": SINGLE_PUT_SIZE,
                                  "max_chunk_get_size": BLOCK_SIZE, "max_single_get_size": SINGLE_PUT_SIZE}
