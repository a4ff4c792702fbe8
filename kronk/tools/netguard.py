"""The SSRF guard: which addresses an outbound tool request may reach.

A URL a model (or a request) names is resolved once; every address it resolves to must be a
public one unless the operator's allowlist names the host or a network holding the address.
Refused: loopback, private (RFC 1918, ULA), link-local (incl. cloud metadata 169.254.169.254),
shared/CGNAT, multicast, unspecified, reserved and documentation ranges, also when hidden in an
IPv4-mapped, NAT64 or 6to4 IPv6 address. Callers then connect to the checked addresses
(`pinned`), never resolving the name again, so DNS rebinding cannot swap the address between
the check and the connect; every redirect hop goes through the guard again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from kronk.errors import ConfigError, ToolError, ToolRefusedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) -> IP address strings; the system's getaddrinfo unless a test stubs it."""

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal"})
"""Names cloud providers answer their metadata services on (refused unless allowlisted)."""
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "169.254.169.123", "100.100.100.200", "fd00:ec2::254", "fd00:ec2::23"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


async def system_resolver(host: str, port: int) -> list[str]:
    """The OS resolver, off the event loop's thread."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public destination, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None:
            reason = refusal_reason(inner)
            return f"{reason} (inside {address})" if reason else None
        if address.scope_id:
            return "a scoped IPv6 address"
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "a non-public address"),
    )
    return next((why for refused, why in checks if refused), None)


def _literal(host: str) -> IPAddress | None:
    """The address a host names literally, including the old inet_aton forms (2130706433, 0x7f.1, 127.1)
    that resolvers accept, so none of them slips past as a "name"."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and any(c.isdigit() for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the guard, with the addresses to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


class NetGuard:
    """Checks outbound URLs against the address rules and the operator's allowlist."""

    def __init__(self, allow: Iterable[str] = (), resolver: Resolver | None = None) -> None:
        self._networks: list[Network] = []
        self._hosts: set[str] = set()
        for entry in allow:
            entry = entry.strip()
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if "/" in entry or " " in entry:
                    raise ConfigError(f"tools allowlist: {entry!r} is neither a host name nor an IP/CIDR") from None
                self._hosts.add(entry.lower().rstrip("."))
        self._resolver: Resolver = resolver or system_resolver

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._hosts

    def check_address(self, address: str, host: str) -> str:
        """`address` if it may be reached for `host`; ToolRefusedError otherwise."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if self.host_allowed(host) or any(ip in net for net in self._networks if net.version == ip.version):
            return str(ip)
        reason = refusal_reason(ip)
        if reason is None:
            return str(ip)
        shown = host if host == str(ip) else f"{host} ({ip})"
        raise ToolRefusedError(f"refused to connect to {shown}: {reason}; the tools allowlist does not name it")

    async def check(self, url: str) -> Target:
        """Parse, resolve and check a URL; every address it resolves to must pass."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ToolRefusedError(f"not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ToolRefusedError(f"only http and https URLs can be fetched, not {scheme or 'a relative URL'!r}")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise ToolRefusedError("the URL names no host")
        if parts.username is not None or parts.password is not None:
            raise ToolRefusedError("URLs with credentials (user:password@) are not fetched")
        port = port or (443 if scheme == "https" else 80)
        literal = _literal(host)
        if literal is not None:
            addresses = [self.check_address(str(literal), host)]
        else:
            if host.lower() in METADATA_HOSTS and not self.host_allowed(host):
                raise ToolRefusedError(f"refused to connect to {host}: a cloud metadata host name")
            try:
                resolved = await self._resolver(host, port)
            except OSError as exc:
                raise ToolError(f"cannot resolve {host}: {exc.strerror or exc}") from None
            if not resolved:
                raise ToolError(f"cannot resolve {host}: no addresses")
            addresses = [self.check_address(a, host) for a in resolved]
        return Target(url=url, scheme=scheme, host=host, port=port, addresses=tuple(addresses))
