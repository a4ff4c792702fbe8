"""Browser sessions: a token traded once for an opaque id the browser keeps in an HttpOnly cookie.

The browser UI never holds the token after login: the server keeps it next to the session
and every call made with the cookie is checked as if the token itself had been sent (same
grants, limits and expiry). A session ends after `idle_seconds` without use (each use
renews it), at the token's own expiry, or at logout. Sessions live in memory only: a
restarted server asks for the token again.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kronk.errors import RateLimitError

COOKIE_NAME = "kronk_session"
DEFAULT_IDLE_SECONDS = 30 * 60.0
LOGIN_WINDOW_SECONDS = 60.0
LOGIN_ATTEMPTS = 10
"""Failed logins allowed per client address and window before 429."""
MAX_SESSIONS = 10_000


@dataclass(slots=True)
class Session:
    token: str
    expires_at: float
    """Hard end: the token's own expiry (exp claim)."""
    last_used: float


class SessionStore:
    """Thread-safe map of session id -> Session, with sliding idle expiry and login throttling."""

    def __init__(self, idle_seconds: float = DEFAULT_IDLE_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def create(self, token: str, token_expires_at: float) -> str:
        """A new session for a verified token; returns its id (256 random bits)."""
        now = self.clock()
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._prune(now)
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda key: self._sessions[key].last_used)
                del self._sessions[oldest]
            self._sessions[session_id] = Session(token, token_expires_at, now)
        return session_id

    def use(self, session_id: str) -> str | None:
        """The session's token, renewing it; None when it is unknown, idle too long or past the token's expiry."""
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_used > self.idle_seconds or now >= session.expires_at:
                del self._sessions[session_id]
                return None
            session.last_used = now
            return session.token

    def peek(self, session_id: str) -> Session | None:
        """The live session without renewing it (for status answers)."""
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or now - session.last_used > self.idle_seconds or now >= session.expires_at:
                return None
            return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def check_login_allowed(self, client: str) -> None:
        """Raise RateLimitError when `client` failed too many logins in the last window."""
        now = self.clock()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return
            while failures and now - failures[0] > LOGIN_WINDOW_SECONDS:
                failures.popleft()
            if len(failures) >= LOGIN_ATTEMPTS:
                retry = max(1, int(LOGIN_WINDOW_SECONDS - (now - failures[0])) + 1)
                raise RateLimitError(f"too many failed logins; try again in {retry}s", retry_after=retry,
                                     code="login_rate_limited")

    def record_failure(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, deque()).append(self.clock())
            if len(self._failures) > MAX_SESSIONS:
                self._failures.pop(next(iter(self._failures)))

    def _prune(self, now: float) -> None:
        dead = [key for key, s in self._sessions.items()
                if now - s.last_used > self.idle_seconds or now >= s.expires_at]
        for key in dead:
            del self._sessions[key]
