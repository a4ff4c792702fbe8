"""Fixtures of the security tests: a fake clock, keys, a small real aiohttp app, Redis."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kronk import paths
from kronk.security.config import SecurityConfig, SecurityMode
from kronk.security.keys import KeyStore
from kronk.security.middleware import CLAIMS_KEY, setup_security
from kronk.security.routes import add_security_routes
from kronk.security.tokens import Grant, IssuedToken, Window, issue_token
from tests.require import missing

START = datetime(2031, 5, 17, 15, 30, 0, tzinfo=UTC).timestamp()

INFERENCE_PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/embeddings",
    "/v1/rerank",
    "/v1/tokenize",
    "/v1/detokenize",
)


@dataclass
class FakeClock:
    """A settable clock injected into the security runtime."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys() -> KeyStore:
    store = KeyStore(paths.keys_dir())
    store.create()
    return store


def mint(
    keys: KeyStore,
    clock: FakeClock,
    *,
    admin: bool = False,
    endpoints: dict[str, Grant] | None = None,
    duration: timedelta = timedelta(hours=1),
    issuer: str = "kronk",
    subject: str | None = None,
) -> IssuedToken:
    return issue_token(
        keys, issuer=issuer, duration=duration, now=clock(), admin=admin, endpoints=endpoints, subject=subject
    )


def grants(**spec: str) -> dict[str, Grant]:
    """grants(chat_completions="2/day") -> {"chat-completions": Grant(DAY, 2)}."""
    out: dict[str, Grant] = {}
    for name, rule in spec.items():
        endpoint = name.replace("_", "-")
        if rule == "unlimited":
            out[endpoint] = Grant(Window.UNLIMITED)
        else:
            limit, window = rule.split("/")
            out[endpoint] = Grant(Window(window), int(limit))
    return out


@dataclass
class Calls:
    """Every handler call of the test app: (path, claims)."""

    seen: list[tuple[str, Any]] = field(default_factory=list)


CALLS: web.AppKey[Calls] = web.AppKey("calls", Calls)


async def _record(request: web.Request) -> web.Response:
    request.app[CALLS].seen.append((request.path, request.get(CLAIMS_KEY)))
    claims = request.get(CLAIMS_KEY)
    return web.json_response({"ok": True, "subject": claims.subject if claims else None})


def build_app(config: SecurityConfig, clock: FakeClock | None = None, **app_args: Any) -> web.Application:
    """A small real app: dummy handlers on the real paths, plus the security routes."""
    app = web.Application(**app_args)
    app[CALLS] = Calls()
    setup_security(app, config, **({"clock": clock} if clock is not None else {}))
    add_security_routes(app)
    for path in INFERENCE_PATHS:
        app.router.add_post(path, _record)
    for path in ("/v1/liveness", "/v1/readiness", "/metrics", "/v1/models", "/v1/models/{model}", "/v1/kronk/libs"):
        app.router.add_get(path, _record)
    app.router.add_get("/v1/kronk/models/{model}", _record)
    app.router.add_get("/v1/other", _record)
    app.router.add_get("/ui/index.html", _record)
    return app


@pytest.fixture
def full_config() -> SecurityConfig:
    return SecurityConfig(mode=SecurityMode.FULL)


@pytest.fixture
async def client(full_config: SecurityConfig, clock: FakeClock, keys: KeyStore) -> AsyncIterator[TestClient]:
    """A full-mode app on 127.0.0.1 with a key already present."""
    async with TestClient(TestServer(build_app(full_config, clock), host="127.0.0.1")) as test_client:
        yield test_client


def handler_calls(client: TestClient) -> list[tuple[str, Any]]:
    return client.app[CALLS].seen


def counted_calls() -> int:
    """Sum of every rate counter in the default SQLite store."""
    db = paths.kronk_home() / "security.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COALESCE(SUM(count), 0) FROM rate_counters").fetchone()[0])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_redis(workdir: Path) -> Iterator[str]:
    """Start redis-server on a free 127.0.0.1 port (no persistence); yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis", "redis-server is not installed (apt-get install -y redis-server)")
    import redis

    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    pytest.fail(f"redis-server exited with code {process.returncode}")
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer PING")
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One redis-server for the session (needs Debian's redis-server package)."""
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_db(redis_url: str) -> Iterator[str]:
    """The shared server, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    yield redis_url
