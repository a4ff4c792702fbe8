"""Fixtures of the RPC tests: the installed build must have ggml-rpc and its server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kronk.cli.rpc import find_program
from kronk.errors import LibraryNotFoundError
from tests.require import missing
from tests.rpc.support import RPCServer


@pytest.fixture
def rpc_program(lib_dir: Path) -> Path:
    """The RPC server of the installed build (scripts/setup.sh installs a build that has it)."""
    try:
        return find_program({"KRONK_LIB_PATH": str(lib_dir)})
    except LibraryNotFoundError as exc:
        missing("libs", str(exc))
        raise


@pytest.fixture
def rpc_servers(rpc_program: Path, tmp_path: Path) -> Iterator[Callable[[int], list[RPCServer]]]:
    """Start n `kronk rpc-server`s on 127.0.0.1; all are stopped after the test."""
    started: list[RPCServer] = []

    def start(n: int) -> list[RPCServer]:
        servers = [RPCServer(tmp_path / "rpc").start() for _ in range(n)]
        started.extend(servers)
        return servers

    yield start
    for server in started:
        server.stop()
