"""Two `kronk server` replicas behind nginx with one redis-server, all on 127.0.0.1.

Through the balancer with the official `openai` client: requests spread over both
replicas, a token's rate limit holds exactly across them (shared Redis, shared keys),
a conversation header keeps its replica (sticky hash), and killing a replica mid-run
gives its streaming clients a clean error while new requests go to the other one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import pytest
import requests

from kronk.security.keys import KeyStore
from kronk.security.tokens import Grant, Window, issue_token
from tests.deploy.cluster import SESSION_HEADER, Cluster
from tests.security.conftest import running_redis

pytestmark = [pytest.mark.requires_libs, pytest.mark.requires_redis]

LIMIT = 6


@pytest.fixture
def cluster(tmp_path: Path, smollm2: Path, lib_dir: Path) -> Iterator[tuple[Cluster, KeyStore]]:
    keys = KeyStore(tmp_path / "keys")
    keys.create()
    running = Cluster(tmp_path / "cluster")
    with running_redis(tmp_path) as redis_url:
        try:
            running.start_replicas(2, smollm2, keys.directory, redis_url)
            running.start_nginx()
            yield running, keys
        finally:
            running.stop()


def _token(keys: KeyStore, limit: int | None) -> str:
    grant = Grant(Window.DAY, limit) if limit else Grant(Window.UNLIMITED)
    return issue_token(keys, issuer="kronk", duration=timedelta(hours=1), now=time.time(),
                       endpoints={"chat-completions": grant}).token


def _client(cluster: Cluster, token: str, session: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{cluster.url}/v1", api_key=token, max_retries=0, timeout=60,
                         default_headers={SESSION_HEADER: session} if session else None)


def _ask(client: openai.OpenAI, model: str) -> str:
    answer = client.chat.completions.create(model=model, max_tokens=2,
                                            messages=[{"role": "user", "content": "Say hi"}])
    return answer.choices[0].message.content or ""


def _chat_rows(cluster: Cluster) -> list[tuple[str, int, str, str]]:
    return [(path, status, upstream, session) for _, path, status, upstream, session in cluster.access_log()
            if path == "/v1/chat/completions"]


def test_replicas_behind_nginx_share_limits_stick_and_survive_a_killed_replica(
        cluster: tuple[Cluster, KeyStore]) -> None:
    running, keys = cluster
    a, b = running.replicas

    limited = _client(running, _token(keys, LIMIT))
    for _ in range(LIMIT):
        _ask(limited, running.model)
    with pytest.raises(openai.RateLimitError):
        _ask(limited, running.model)
    served = Counter(upstream for _, status, upstream, _ in _chat_rows(running) if status == 200)
    assert served == {a.address: LIMIT // 2, b.address: LIMIT // 2}, "round robin spread the calls over both"

    token = _token(keys, None)
    for _ in range(4):
        _ask(_client(running, token, session="conversation-1"), running.model)
    deadline = time.monotonic() + 10  # nginx logs a request once it has closed it, a moment after the answer
    while sum(row[3] == "conversation-1" for row in _chat_rows(running)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    sticky = {upstream for _, _, upstream, session in _chat_rows(running) if session == "conversation-1"}
    assert len(sticky) == 1, f"one conversation, one replica: {sticky}"
    doomed = a if sticky == {a.address} else b
    survivor = b if doomed is a else a

    before = len(_chat_rows(running))
    streams = []
    for _ in range(2):
        stream = _client(running, token, session="conversation-1").chat.completions.create(
            model=running.model, max_tokens=1500, stream=True, extra_body={"ignore_eos": True},
            messages=[{"role": "user", "content": "Count to one thousand."}])
        next(iter(stream))
        streams.append(stream)
    doomed.kill9()
    for stream in streams:
        started = time.monotonic()
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            for _ in stream:
                pass
        assert time.monotonic() - started < 30, "the cut stream ended promptly"

    for session in ("conversation-1", None, None, None):
        assert _ask(_client(running, token, session=session), running.model) is not None
    time.sleep(0.2)  # nginx logs a request when it has closed it
    after = _chat_rows(running)[before:]
    cut = [row for row in after if row[2] == doomed.address]
    assert len(cut) == 2, after  # the two streams that were running on the killed replica
    rest = [row for row in after if row[2] != doomed.address]
    assert [(status, upstream.split(", ")[-1]) for _, status, upstream, _ in rest] == \
        [(200, survivor.address)] * 4, after
    assert requests.get(f"{survivor.url}/v1/readiness", timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{doomed.url}/v1/readiness", timeout=5)
