"""Small state objects the app keeps under its AppKeys."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

State = Literal["starting", "loading", "ready", "failed", "stopping"]


@dataclass(slots=True)
class HealthState:
    """What readiness reports; the app's startup and shutdown move it along."""

    default_model: str
    state: State = "starting"
    error: str | None = None
    started_at: float = field(default_factory=time.time)

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"status": self.state, "default_model": self.default_model}
        if self.error:
            out["error"] = self.error
        return out
