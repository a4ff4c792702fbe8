"""A guard that fails any test whose process opens a connection beyond this machine.

Tests, benchmarks and load tests talk only to loopback (127.0.0.0/8, ::1). The guard
wraps `socket.connect`/`connect_ex` for the whole session, so a test that would reach
a real host fails at once, naming the address, before a packet leaves; Unix sockets
and loopback pass. It wraps `socket.getaddrinfo` too: a name lookup asks a DNS server,
which is traffic as well, so only IP literals and `localhost` names may be resolved (a
test that needs a hostname stubs the resolver). (Subprocesses and C-level clients are
outside its reach.)
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


def _check_name(host: Any) -> None:
    """A lookup that stays on this machine: no host, an IP literal, or a `localhost` name."""
    if host is None:
        return
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return
    except ValueError:
        pass
    if name.rstrip(".").lower() in ("localhost", "localhost.localdomain") or name.lower().endswith(".localhost"):
        return
    raise NonLoopbackConnection(f"tests may not look up host names (a DNS query): {name!r}; stub the resolver")


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

    getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        _check_name(host)
        return getaddrinfo(host, *args, **kwargs)

    guarded_connect._loopback_only = True  # type: ignore[attr-defined]
    socket.socket.connect = guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_getaddrinfo  # type: ignore[assignment]
