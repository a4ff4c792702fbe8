"""Progress events of a model transfer: a pull into the store or a push to a peer.

Both report the same steps (one file's bytes moving, then verify and install), and
the CLI draws both with the same bars, so they share one event type and one wire
shape (`to_dict`, streamed by the management API as SSE data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

TransferStatus = Literal["resolving", "downloading", "extracting", "uploading", "verifying", "installing", "exists",
                         "done", "retrying"]


@dataclass(frozen=True, slots=True)
class TransferEvent:
    """One progress step; `completed`/`total` are bytes of `file` while it moves (downloaded, extracted
    from a wheel, or held by the receiver of a push)."""

    status: TransferStatus
    model: str | None = None
    file: str | None = None
    completed: int | None = None
    total: int | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "model": self.model, "file": self.file,
                "completed": self.completed, "total": self.total, "message": self.message}


TransferCallback = Callable[[TransferEvent], None]
