"""Progress events of an install, small enough to stream as SSE or draw as a Rich bar.

The installer calls one callback with every event; the CLI draws them, the server's
management API serialises them. A callback may raise (e.g. KeyboardInterrupt) to
abort: the install cleans up and leaves the previous install untouched.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


class Stage(enum.StrEnum):
    """What the installer is doing; `ATTEMPT` and `FAILED` frame each source tried."""

    ATTEMPT = "attempt"
    DOWNLOAD = "download"
    EXTRACT = "extract"
    BUILD = "build"
    STAGE = "stage"
    VERIFY = "verify"
    INSTALL = "install"
    FAILED = "failed"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One step: `done`/`total` are bytes for downloads, percent for builds, None otherwise."""

    stage: Stage
    message: str = ""
    done: int | None = None
    total: int | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stage"] = self.stage.value
        return data


ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:
    """The default callback: drop every event."""


def download_progress(progress: ProgressCallback, name: str, source: str) -> Callable[[int, int | None], None]:
    """The downloader's byte counts (see `kronk.manage.download.ByteProgress`) as DOWNLOAD events."""
    return lambda done, total: progress(ProgressEvent(Stage.DOWNLOAD, name, done, total, source))
