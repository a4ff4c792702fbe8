"""A guard that fails any test whose process opens a connection beyond this machine.

Tests, benchmarks and load tests talk only to loopback (127.0.0.0/8, ::1). The guard
wraps `socket.connect`/`connect_ex` for the whole session, so a test that would reach
a real host fails at once, naming the address, before a packet leaves; Unix sockets
and loopback pass. (Subprocesses and C-level clients are outside its reach.)
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any


class NonLoopbackConnection(AssertionError):
    """A test tried to connect beyond loopback."""


def _check(address: Any, family: int) -> None:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0] if isinstance(address, tuple) else address
    try:
        loopback = ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise NonLoopbackConnection(f"tests may only connect to loopback, not {address!r}")


def install() -> None:
    """Wrap the socket methods once for this process."""
    if getattr(socket.socket.connect, "_loopback_only", False):
        return
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: Any) -> None:
        _check(address, self.family)
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        _check(address, self.family)
        return connect_ex(self, address)

    guarded_connect._loopback_only = True  # type: ignore[attr-defined]
    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
