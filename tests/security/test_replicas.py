"""Two server processes sharing one real Redis enforce one shared limit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
import redis

from kronk.security.keys import KeyStore
from kronk.security.tokens import Grant, Window, issue_token
from tests.security.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> None:
    import urllib.error
    import urllib.request

    for _ in range(600):
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"replica on port {port} exited with {process.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/liveness", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
    pytest.fail(f"replica on port {port} never became ready")


@pytest.fixture
def replicas(redis_db: str, keys: KeyStore) -> Iterator[list[int]]:
    env = {**os.environ, "KRONK_SECURITY": "full", "KRONK_RATE_STORE": redis_db, "PYTHONPATH": str(ROOT)}
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.security.replica_app", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for port in ports
    ]
    try:
        for process, port in zip(processes, ports, strict=True):
            _wait_ready(process, port)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)


@pytest.mark.requires_redis
async def test_two_replicas_share_one_limit(replicas: list[int], keys: KeyStore, redis_db: str) -> None:
    limit = 5
    token = issue_token(
        keys,
        issuer="kronk",
        duration=timedelta(hours=1),
        now=time.time(),
        endpoints={"chat-completions": Grant(Window.YEAR, limit)},
    ).token
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:

        async def call(port: int) -> int:
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers=headers, json={}) as r:
                return r.status

        statuses = await asyncio.gather(*(call(replicas[i % 2]) for i in range(16)))
        assert Counter(statuses) == {200: limit, 429: 16 - limit}
        # each replica alone also sees the shared count
        assert [await call(port) for port in replicas] == [429, 429]
    client = redis.Redis.from_url(redis_db)
    counters = [key for key in client.scan_iter("kronk:rate:*")]
    assert len(counters) == 1
    assert int(client.get(counters[0])) == limit
    client.close()
