"""Calendar windows, atomic counting, persistence across restarts, the Redis store."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kronk.errors import ConfigError, RateLimitError, SecurityError
from kronk.security.config import SecurityConfig
from kronk.security.rate_redis import RedisRateStore
from kronk.security.rate_sqlite import SQLiteRateStore
from kronk.security.ratelimit import RateLimiter, RateStore, counter_key, open_rate_store, window_bounds
from kronk.security.tokens import Grant, Window
from tests.security.conftest import FakeClock, free_port, running_redis


def ts(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("window", "now", "start", "end"),
    [
        (Window.DAY, ts(2031, 5, 17, 15, 30), ts(2031, 5, 17), ts(2031, 5, 18)),
        (Window.DAY, ts(2031, 12, 31, 23, 59, 59), ts(2031, 12, 31), ts(2032, 1, 1)),
        (Window.MONTH, ts(2031, 12, 5), ts(2031, 12, 1), ts(2032, 1, 1)),
        (Window.MONTH, ts(2032, 2, 29, 12), ts(2032, 2, 1), ts(2032, 3, 1)),
        (Window.YEAR, ts(2031, 7, 1), ts(2031, 1, 1), ts(2032, 1, 1)),
        (Window.DAY, ts(2031, 5, 18), ts(2031, 5, 18), ts(2031, 5, 19)),
    ],
)
def test_window_bounds_are_utc_calendar_windows(window: Window, now: float, start: float, end: float) -> None:
    assert window_bounds(window, now) == (int(start), int(end))


def _sqlite(tmp_path: Path, clock: FakeClock) -> SQLiteRateStore:
    return SQLiteRateStore(tmp_path / "rate.db", clock=clock)


def test_limit_counts_per_day_and_resets_next_day(tmp_path: Path, clock: FakeClock) -> None:
    limiter = RateLimiter(_sqlite(tmp_path, clock))
    grant = Grant(Window.DAY, 3)
    assert [limiter.check("tok", "chat-completions", grant, clock()).count for _ in range(3)] == [1, 2, 3]
    with pytest.raises(RateLimitError) as caught:
        limiter.check("tok", "chat-completions", grant, clock())
    midnight = ts(2031, 5, 18)
    assert caught.value.retry_after == int(midnight - clock())
    # refused calls are not counted; other endpoints and tokens have their own counters
    assert limiter.check("tok", "embeddings", grant, clock()).count == 1
    assert limiter.check("other", "chat-completions", grant, clock()).count == 1
    clock.now = midnight
    assert limiter.check("tok", "chat-completions", grant, clock()).count == 1
    limiter.store.close()


def test_month_and_year_windows(tmp_path: Path, clock: FakeClock) -> None:
    limiter = RateLimiter(_sqlite(tmp_path, clock))
    clock.now = ts(2031, 1, 31, 23)
    limiter.check("tok", "rerank", Grant(Window.MONTH, 1), clock())
    limiter.check("tok", "tokenize", Grant(Window.YEAR, 1), clock())
    clock.now = ts(2031, 2, 1, 1)
    limiter.check("tok", "rerank", Grant(Window.MONTH, 1), clock())  # new month
    with pytest.raises(RateLimitError) as caught:
        limiter.check("tok", "tokenize", Grant(Window.YEAR, 1), clock())  # same year
    assert caught.value.retry_after == int(ts(2032, 1, 1) - clock())
    limiter.store.close()


def test_unlimited_is_not_counted_and_zero_always_refuses(tmp_path: Path, clock: FakeClock) -> None:
    store = _sqlite(tmp_path, clock)
    limiter = RateLimiter(store)
    for _ in range(5):
        assert limiter.check("tok", "embeddings", Grant(Window.UNLIMITED), clock()) is None
    with pytest.raises(RateLimitError):
        limiter.check("tok", "embeddings", Grant(Window.DAY, 0), clock())
    start, _ = window_bounds(Window.DAY, clock())
    assert store.count(counter_key("tok", "embeddings", Window.DAY, start)) == 0
    store.close()


def test_counters_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    first = RateLimiter(_sqlite(tmp_path, clock))
    grant = Grant(Window.DAY, 3)
    first.check("tok", "messages", grant, clock())
    first.check("tok", "messages", grant, clock())
    first.store.close()
    second = RateLimiter(_sqlite(tmp_path, clock))
    assert second.check("tok", "messages", grant, clock()).count == 3
    with pytest.raises(RateLimitError):
        second.check("tok", "messages", grant, clock())
    second.store.close()


def test_sqlite_uses_wal(tmp_path: Path, clock: FakeClock) -> None:
    store = _sqlite(tmp_path, clock)
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_expired_counters_are_purged_on_open(tmp_path: Path, clock: FakeClock) -> None:
    store = _sqlite(tmp_path, clock)
    store.hit("old", 5, int(clock()) + 10)
    store.close()
    clock.advance(11)
    reopened = _sqlite(tmp_path, clock)
    assert reopened.count("old") == 0
    reopened.close()


def _hammer(store: RateStore, threads: int, per_thread: int, limit: int) -> int:
    allowed = []
    lock = threading.Lock()

    def work() -> None:
        mine = sum(store.hit("shared", limit, 4_000_000_000).allowed for _ in range(per_thread))
        with lock:
            allowed.append(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(allowed)


def test_sqlite_increments_are_atomic_across_threads(tmp_path: Path, clock: FakeClock) -> None:
    store = _sqlite(tmp_path, clock)
    assert _hammer(store, threads=4, per_thread=40, limit=100) == 100
    assert store.count("shared") == 100
    store.close()


def test_two_sqlite_stores_on_one_file_share_counts(tmp_path: Path, clock: FakeClock) -> None:
    a, b = _sqlite(tmp_path, clock), _sqlite(tmp_path, clock)
    results = [s.hit("k", 3, 4_000_000_000).allowed for s in (a, b, a, b)]
    assert results == [True, True, True, False]
    a.close()
    b.close()


def test_open_rate_store_by_url(tmp_path: Path) -> None:
    store = open_rate_store(f"sqlite://{tmp_path}/x.db")
    assert isinstance(store, SQLiteRateStore)
    store.close()
    default = open_rate_store(SecurityConfig().rate_store_url)
    assert isinstance(default, SQLiteRateStore) and default.path.name == "security.db"
    default.close()
    for bad in ("memcached://x", "sqlite://relative.db", "sqlite://", ""):
        with pytest.raises(ConfigError):
            open_rate_store(bad)


def test_unreachable_redis_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot reach"):
        RedisRateStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)


@pytest.mark.requires_redis
def test_redis_store_counts_atomically_and_expires(redis_db: str) -> None:
    store = RedisRateStore(redis_db)
    assert _hammer(store, threads=4, per_thread=40, limit=100) == 100
    assert store.count("shared") == 100
    assert store._client.ttl("shared") > 0
    assert store.hit("zero", 0, 4_000_000_000).allowed is False
    store.close()


@pytest.mark.requires_redis
def test_redis_limiter_windows(redis_db: str, clock: FakeClock) -> None:
    limiter = RateLimiter(RedisRateStore(redis_db))
    grant = Grant(Window.DAY, 2)
    limiter.check("tok", "chat-completions", grant, clock())
    limiter.check("tok", "chat-completions", grant, clock())
    with pytest.raises(RateLimitError):
        limiter.check("tok", "chat-completions", grant, clock())
    clock.advance(86400)
    assert limiter.check("tok", "chat-completions", grant, clock()).count == 1
    limiter.store.close()


@pytest.mark.requires_redis
def test_redis_going_away_is_a_security_error(tmp_path: Path) -> None:
    with running_redis(tmp_path) as url:
        store = RedisRateStore(url, timeout_s=0.5)
        assert store.hit("k", 5, 4_000_000_000).allowed
    with pytest.raises(SecurityError) as caught:
        store.hit("k", 5, 4_000_000_000)
    assert caught.value.code == "rate_store_unavailable"
    store.close()
