"""Processes for the RPC tests: `kronk rpc-server`s and `kronk server start` on 127.0.0.1.

Every process is a child of the test with its own log file, so a server that dies shows
its log in the assertion, and the test process itself never links ggml-rpc.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_env(home: Path) -> dict[str, str]:
    """The test's env (KRONK_LIB_PATH: the real libs) with its own KRONK_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRONK_") or k == "KRONK_LIB_PATH"}
    env.update(KRONK_HOME=str(home), PYTHONPATH=str(REPO), NO_COLOR="1")
    return env


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass
class RPCServer:
    """`kronk rpc-server --host 127.0.0.1 --port N` (one CPU thread: the tests share two cores)."""

    home: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / f"rpc-{self.port}.log"

    def start(self) -> RPCServer:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kronk", "rpc-server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--threads", "1"], env=child_env(self.home), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"rpc-server on {self.endpoint} did not start: {self.log.read_text()}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        _stop(self.process)


@dataclass
class KronkServer:
    """`kronk server start` over `model` with the given flags and an optional model config."""

    home: Path
    model: Path
    flags: tuple[str, ...] = ()
    model_config: dict[str, Any] | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def start(self, ready: bool = True) -> KronkServer:
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "kronk", "server", "start", "--host", "127.0.0.1", "--port", str(self.port),
                "--model", str(self.model), "--slots", "1", "--threads", "1", "--ctx-size", "512",
                "--batch-size", "512", "--model-ttl", "0", "--no-ui", "--log-level", "info", *self.flags]
        if self.model_config is not None:
            path = self.home / "models.yaml"
            path.write_text(yaml.safe_dump(self.model_config))
            argv += ["--model-config", str(path)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, env=child_env(self.home), stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.home)
        deadline = time.monotonic() + 300
        path = "/v1/readiness" if ready else "/v1/liveness"
        while time.monotonic() < deadline:
            self.assert_alive()
            try:
                with requests.get(self.url + path, timeout=2) as response:
                    if response.status_code == 200:
                        return self
                    state = response.json() if ready else {}
                    assert state.get("status") != "failed", f"the default model failed to load: {state}"
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server on {self.url} did not become ready: {self.log.read_text()[-3000:]}")

    def assert_alive(self) -> None:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]

    def complete(self, prompt: str, max_tokens: int = 24, model: str | None = None) -> requests.Response:
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "seed": 1}
        if model is not None:
            body["model"] = model
        return requests.post(self.url + "/v1/completions", json=body, timeout=300)

    def stream(self, prompt: str, max_tokens: int) -> Iterator[dict[str, Any]]:
        """The SSE events of a streamed completion, as parsed JSON (a read timeout fails the test)."""
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True, "ignore_eos": True}
        with requests.post(self.url + "/v1/completions", json=body, stream=True, timeout=60) as response:
            assert response.status_code == 200, response.text
            for line in response.iter_lines():
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    yield json.loads(line[6:])

    def stop(self) -> None:
        _stop(self.process)
