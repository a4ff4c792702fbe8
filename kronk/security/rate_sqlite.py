"""Rate counters in one SQLite file: the embedded default; survives restarts.

WAL mode lets readers and the writer overlap; each hit is one UPSERT statement, so
the check and the increment are a single atomic transaction, also across processes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kronk.errors import ConfigError, SecurityError
from kronk.security.rate_store import Hit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_counters (
    key        TEXT PRIMARY KEY,
    count      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID
"""
_HIT = """
INSERT INTO rate_counters (key, count, expires_at) VALUES (?, 1, ?)
ON CONFLICT (key) DO UPDATE SET count = count + 1 WHERE count < ?
RETURNING count
"""
PURGE_EVERY = 1024


class SQLiteRateStore:
    """Counters in `path`; one connection shared by threads under a lock."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"cannot open the rate-limit database {path}: {exc}") from exc
        self._lock = threading.Lock()
        self._hits = 0
        self._purge()

    def _purge(self) -> None:
        self._conn.execute("DELETE FROM rate_counters WHERE expires_at <= ?", (int(self._clock()),))

    def hit(self, key: str, limit: int, expires_at: int) -> Hit:
        if limit <= 0:
            return Hit(False, 0)
        with self._lock:
            try:
                row = self._conn.execute(_HIT, (key, expires_at, limit)).fetchone()
                self._hits += 1
                if self._hits % PURGE_EVERY == 0:
                    self._purge()
            except sqlite3.Error as exc:
                raise SecurityError(f"rate-limit database error: {exc}", code="rate_store_unavailable") from exc
        return Hit(True, int(row[0])) if row is not None else Hit(False, limit)

    def count(self, key: str) -> int:
        with self._lock:
            row = self._conn.execute("SELECT count FROM rate_counters WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row is not None else 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()
