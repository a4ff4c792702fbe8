"""Per-token, per-endpoint call limits in UTC calendar windows (day, month, year).

A counter key names the token (its jti, else a sha256 of it), the endpoint and the
window's start, so a new window starts from zero without any reset job. Stores do an
atomic check-and-increment: a call over the limit is refused and not counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kronk.errors import ConfigError, RateLimitError
from kronk.security.config import rate_store_kind, sqlite_path
from kronk.security.rate_store import Hit, RateStore
from kronk.security.tokens import Grant, Window

EXPIRY_MARGIN_SECONDS = 3600
"""Counters outlive their window a little, so replicas with skewed clocks still agree."""


def window_bounds(window: Window, now: float) -> tuple[int, int]:
    """[start, end) of the UTC calendar window containing `now`, as UNIX seconds."""
    if window is Window.UNLIMITED:
        raise ValueError("an unlimited window has no bounds")
    moment = datetime.fromtimestamp(now, UTC)
    if window is Window.DAY:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = datetime.fromordinal(start.toordinal() + 1).replace(tzinfo=UTC)
    elif window is Window.MONTH:
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    else:
        start = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1)
    return int(start.timestamp()), int(end.timestamp())


def counter_key(counter_id: str, endpoint: str, window: Window, start: int) -> str:
    return f"kronk:rate:{counter_id}:{endpoint}:{window.value}:{start}"


class RateLimiter:
    """Counts one call of a token on an endpoint against its grant."""

    def __init__(self, store: RateStore) -> None:
        self.store = store

    def check(self, counter_id: str, endpoint: str, grant: Grant, now: float) -> Hit | None:
        """Count the call, or raise RateLimitError (with seconds until the window resets).

        Unlimited grants are not counted (None is returned).
        """
        if grant.window is Window.UNLIMITED or grant.limit is None:
            return None
        start, end = window_bounds(grant.window, now)
        retry_after = max(1, math.ceil(end - now))
        if grant.limit <= 0:
            raise RateLimitError(f"the token's {endpoint} limit is 0 per {grant.window.value}", retry_after)
        hit = self.store.hit(
            counter_key(counter_id, endpoint, grant.window, start), grant.limit, end + EXPIRY_MARGIN_SECONDS
        )
        if not hit.allowed:
            raise RateLimitError(
                f"rate limit reached: {grant.limit} {endpoint} calls per {grant.window.value}; "
                f"retry in {retry_after} s",
                retry_after,
            )
        return hit


def open_rate_store(url: str, *, clock: Callable[[], float] = time.time) -> RateStore:
    """A store for a `KRONK_RATE_STORE` URL (blocking: call it off the event loop).

    `clock` only decides which stale SQLite counters get purged (Redis expires its own).
    """
    if rate_store_kind(url) == "redis":
        try:
            from kronk.security.rate_redis import RedisRateStore
        except ModuleNotFoundError as exc:
            if exc.name != "redis":
                raise
            raise ConfigError("a redis:// rate store needs the redis package: pip install 'kronk[redis]'") from None
        return RedisRateStore(url)
    from kronk.security.rate_sqlite import SQLiteRateStore

    return SQLiteRateStore(sqlite_path(url), clock=clock)
