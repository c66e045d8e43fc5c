"""The reference a message carries instead of a large package (``hub.store.blobs`` holds the bytes).

Two headers: ``x-hub-blob-sha256`` and ``x-hub-blob-size``; the body is empty. Only the hub's own
broker user can publish ``x-hub-*`` headers (``hub.pipeline.intake``), so an adapter cannot point
the hub at someone else's bytes. Kept apart from the store so adapters read it without SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.constants import H_BLOB_SHA256, H_BLOB_SIZE


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int

    def headers(self) -> dict[str, Any]:
        return {H_BLOB_SHA256: self.sha256, H_BLOB_SIZE: self.size}

    @classmethod
    def of(cls, headers: dict[str, Any] | None) -> BlobRef | None:
        """The reference in a message's headers, or None (the package is the body)."""
        h = headers or {}
        sha, size = h.get(H_BLOB_SHA256), h.get(H_BLOB_SIZE)
        if not isinstance(sha, str) or len(sha) != 64 or isinstance(size, bool) or not isinstance(size, int):
            return None
        return cls(sha.lower(), size)
