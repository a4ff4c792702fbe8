"""Helpers of the peer tests: real `kronk server` processes with their own KRONK_HOMEs,
admin and non-admin tokens minted from each home's keys, a seeded model store, and a
TCP proxy that cuts connections after a number of bytes (to prove resumption).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from kronk.models.gguf_info import read_gguf_info
from kronk.models.store import ModelStore
from kronk.security import admin
from kronk.security.config import SecurityConfig
from kronk.security.keys import KeyStore
from kronk.security.tokens import Grant, Window
from tests.manage.fakehub import write_projector, write_split

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"ctx_size": 1024, "temperature": 0.25}
"""The config the seeded chat model carries (it must arrive with the model)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mint(home: Path, *, is_admin: bool = True) -> str:
    """A token signed by `home`'s key (bootstrapping it), admin or with one inference grant only."""
    grants = None if is_admin else {"chat-completions": Grant(Window.UNLIMITED)}
    issued, _ = admin.create_token(KeyStore(home / "keys"), SecurityConfig(), now=time.time(), admin=is_admin,
                                   endpoints=grants, subject="peer-test")
    return issued.token


@dataclass
class KronkServer:
    """`kronk server start` in a child process over its own KRONK_HOME (security: management)."""

    home: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    own_libs: bool = False
    """Run on the libs under its own KRONK_HOME (no KRONK_LIB_PATH)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self) -> ModelStore:
        return ModelStore(self.home / "models", catalog=None)

    def start(self) -> KronkServer:
        keep = () if self.own_libs else ("KRONK_LIB_PATH",)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KRONK_") or k in keep}
        env.update(KRONK_HOME=str(self.home), PYTHONPATH=str(REPO), NO_COLOR="1")
        log = (self.home / "server.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kronk", "server", "start", "--host", "127.0.0.1", "--port", str(self.port),
             "--no-preload", "--security", "management", "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.home / "server.log").read_text()
            try:
                requests.get(f"{self.url}/v1/liveness", timeout=1).close()
                return self
            except requests.RequestException:
                time.sleep(0.1)
        raise AssertionError(f"server on {self.url} did not start")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()


def seed(home: Path, payloads: dict[str, Path]) -> ModelStore:
    """The sender's store: a chat model with a projector and a config, and a 3-shard split model."""
    root = home / "models"
    vision = root / "acme" / "tiny-vision"
    vision.mkdir(parents=True)
    (vision / "tiny-vision-f16.gguf").write_bytes(payloads["chat"].read_bytes())
    write_projector(vision / "mmproj-tiny-vision-f16.gguf")
    split = root / "acme" / "tiny-split"
    split.mkdir(parents=True)
    write_split(split, "tiny-split", payloads["chat"])
    store = ModelStore(root, catalog=None)
    store.rebuild_index()
    chat = store.get("acme/tiny-vision")
    files = [store.path_of(f) for f in chat.files]
    assert chat.projector is not None
    projector = store.path_of(chat.projector)
    shas = {store.path_of(f).name: f.sha256 or "" for f in [*chat.files, chat.projector]}
    store.register(chat.id, files, info=read_gguf_info(files), sha256=shas, projector=projector, projector_info=read_gguf_info(projector), source={"kind": "local"},
                   config=CONFIG)
    return store


class CuttingProxy:
    """A TCP proxy to `target` that closes the first `cuts` connections once `cut_after`
    bytes went through in `direction` ("up": client to server, "down": server to client)."""

    def __init__(self, target_port: int, *, cut_after: int, cuts: int, direction: str, hold: bool = False) -> None:
        self.hold = threading.Event() if hold else None
        """With `hold`, a cut connection stalls (until `release()`) instead of closing: a transfer in progress."""
        self.target_port = target_port
        self.cut_after = cut_after
        self.cuts = cuts
        self.direction = direction
        self.up_bytes = 0
        self.down_bytes = 0
        self.cut_count = 0
        self.requests: list[bytes] = []
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                cut = self.cuts > 0
                self.cuts -= cut
            state = {"count": 0, "cut": cut}
            for source, sink, way in ((client, upstream, "up"), (upstream, client, "down")):
                threading.Thread(target=self._pump, args=(source, sink, way, state, client, upstream),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, way: str, state: dict[str, int],
              client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if way == self.direction and state["cut"]:
                    room = self.cut_after - state["count"]
                    if len(data) >= room:
                        sink.sendall(data[:max(room, 0)])
                        with self.lock:
                            self.cut_count += 1
                        if self.hold is not None:
                            self.hold.wait(60)
                        raise OSError("cut")
                    state["count"] += len(data)
                with self.lock:
                    if way == "up":
                        self.up_bytes += len(data)
                        if data[:4] in (b"GET ", b"PUT ", b"POST"):
                            self.requests.append(data.split(b"\r\n\r\n", 1)[0])
                    else:
                        self.down_bytes += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.listener.close()
