"""The session-wide guard that keeps test traffic on loopback (checked without any connection)."""

from __future__ import annotations

import socket

import pytest

from tests.loopback_only import NonLoopbackConnection, _check, _check_name


@pytest.mark.parametrize("address", [("127.0.0.1", 80), ("127.8.9.10", 1), ("::1", 443, 0, 0), ("localhost", 80)])
def test_loopback_addresses_pass(address: tuple) -> None:
    _check(address, socket.AF_INET6 if ":" in address[0] else socket.AF_INET)


@pytest.mark.parametrize("address", [("10.0.0.1", 80), ("169.254.169.254", 80), ("2001:db8::1", 443, 0, 0),
                                     ("example.org", 443)])
def test_other_addresses_fail_before_connecting(address: tuple) -> None:
    with pytest.raises(NonLoopbackConnection):
        _check(address, socket.AF_INET6 if ":" in address[0] else socket.AF_INET)


def test_unix_sockets_pass() -> None:
    _check("/tmp/some.sock", socket.AF_UNIX)


def test_the_guard_is_installed_for_the_session() -> None:
    assert getattr(socket.socket.connect, "_loopback_only", False)


@pytest.mark.parametrize("host", [None, "127.0.0.1", "::1", "10.0.0.1", "localhost", "LOCALHOST.", "kronk.localhost",
                                  b"127.0.0.1"])
def test_lookups_that_stay_on_this_machine_pass(host: object) -> None:
    _check_name(host)


@pytest.mark.parametrize("host", ["example.org", "mcp.invalid", b"pypi.org"])
def test_name_lookups_fail_before_any_dns_query(host: object) -> None:
    with pytest.raises(NonLoopbackConnection):
        _check_name(host)


def test_the_session_guard_refuses_a_lookup() -> None:
    with pytest.raises(NonLoopbackConnection):
        socket.getaddrinfo("example.org", 443)
