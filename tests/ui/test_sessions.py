"""SessionStore: sliding idle expiry, the token's own expiry, logout and the login throttle (a fake clock)."""

from __future__ import annotations

import pytest

from kronk.errors import RateLimitError
from kronk.security.sessions import LOGIN_ATTEMPTS, LOGIN_WINDOW_SECONDS, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_use_renews_the_session_until_it_idles_out() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=60, clock=clock)
    sid = store.create("tok", token_expires_at=clock.now + 3600)
    for _ in range(5):  # in use: every call renews it, well past one idle period
        clock.now += 50
        assert store.use(sid) == "tok"
    clock.now += 61
    assert store.use(sid) is None
    assert store.use(sid) is None  # gone for good


def test_the_session_ends_with_its_token_and_at_logout() -> None:
    clock = Clock()
    store = SessionStore(idle_seconds=600, clock=clock)
    sid = store.create("tok", token_expires_at=clock.now + 100)
    clock.now += 99
    assert store.use(sid) == "tok"
    clock.now += 1
    assert store.use(sid) is None
    other = store.create("tok", token_expires_at=clock.now + 100)
    assert store.peek(other) is not None
    store.end(other)
    assert store.use(other) is None and store.peek(other) is None
    assert store.use("never-issued") is None


def test_failed_logins_are_throttled_per_client_for_a_window() -> None:
    clock = Clock()
    store = SessionStore(clock=clock)
    for _ in range(LOGIN_ATTEMPTS):
        store.check_login_allowed("10.0.0.1")
        store.record_failure("10.0.0.1")
    with pytest.raises(RateLimitError) as refused:
        store.check_login_allowed("10.0.0.1")
    assert refused.value.code == "login_rate_limited" and refused.value.retry_after >= 1
    store.check_login_allowed("10.0.0.2")  # another client is not affected
    clock.now += LOGIN_WINDOW_SECONDS + 1
    store.check_login_allowed("10.0.0.1")
