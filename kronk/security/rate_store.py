"""What a rate-limit counter store is: the interface the limiter uses and the stores implement.

Its own module so the stores (SQLite, Redis) and the limiter import it, and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Hit:
    allowed: bool
    count: int
    """Calls counted in the window after this one (the limit when refused)."""


class RateStore(Protocol):
    """Where counters live. `hit` must be atomic across threads and processes."""

    def hit(self, key: str, limit: int, expires_at: int) -> Hit: ...

    def count(self, key: str) -> int: ...

    def close(self) -> None: ...
