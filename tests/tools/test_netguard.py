"""The SSRF guard: refused addresses, the allowlist, and refusals that happen before any connection."""

from __future__ import annotations

import ipaddress

import pytest

from kronk.errors import ConfigError, ToolError, ToolRefusedError
from kronk.tools.netguard import NetGuard, refusal_reason
from tests.tools.conftest import StubResolver

REFUSED = [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "169.254.1.1",
    "100.64.0.1", "100.100.100.200", "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1", "2002:7f00:1::",
]
PUBLIC = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_have_a_reason(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data/",
                                 "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/", "https://0.0.0.0/",
                                 "http://2130706433/", "http://0x7f.1/", "http://127.1/"])
async def test_literal_addresses_are_refused_without_resolving(url: str) -> None:
    resolver = StubResolver()
    with pytest.raises(ToolRefusedError):
        await NetGuard(resolver=resolver).check(url)
    assert resolver.asked == []


async def test_a_name_resolving_to_loopback_is_refused() -> None:
    resolver = StubResolver({"rebind.test": ["127.0.0.1"]})
    with pytest.raises(ToolRefusedError, match=r"rebind.test \(127.0.0.1\)"):
        await NetGuard(resolver=resolver).check("http://rebind.test/")


async def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    resolver = StubResolver({"mixed.test": ["93.184.216.34", "10.1.2.3"]})
    with pytest.raises(ToolRefusedError, match="private"):
        await NetGuard(resolver=resolver).check("https://mixed.test/")


async def test_a_public_name_passes_and_is_pinned_to_its_checked_addresses() -> None:
    resolver = StubResolver({"example.test": ["93.184.216.34"]})
    target = await NetGuard(resolver=resolver).check("https://example.test/a?b=c")
    assert (target.host, target.port, target.addresses) == ("example.test", 443, ("93.184.216.34",))


async def test_metadata_host_names_are_refused_before_resolving() -> None:
    resolver = StubResolver({"metadata.google.internal": ["93.184.216.34"]})
    with pytest.raises(ToolRefusedError, match="metadata"):
        await NetGuard(resolver=resolver).check("http://metadata.google.internal/computeMetadata/v1/")
    assert resolver.asked == []


@pytest.mark.parametrize("url", ["ftp://example.test/", "file:///etc/passwd", "gopher://x/", "/relative",
                                 "http://user:pw@example.test/", "http:///nohost"])
async def test_other_schemes_credentials_and_hostless_urls_are_refused(url: str) -> None:
    with pytest.raises(ToolRefusedError):
        await NetGuard(resolver=StubResolver()).check(url)


async def test_unresolvable_names_are_a_tool_error() -> None:
    with pytest.raises(ToolError, match="cannot resolve"):
        await NetGuard(resolver=StubResolver()).check("http://nowhere.test/")


async def test_the_allowlist_admits_cidrs_addresses_and_names() -> None:
    resolver = StubResolver({"intranet.test": ["10.9.8.7"], "other.test": ["10.9.8.7"]})
    guard = NetGuard(["127.0.0.1", "192.168.0.0/16", "intranet.test", "[::1]"], resolver=resolver)
    assert (await guard.check("http://127.0.0.1:8080/")).addresses == ("127.0.0.1",)
    assert (await guard.check("http://192.168.44.1/")).addresses == ("192.168.44.1",)
    assert (await guard.check("http://[::1]/")).addresses == ("::1",)
    assert (await guard.check("http://intranet.test/")).addresses == ("10.9.8.7",)
    with pytest.raises(ToolRefusedError):
        await guard.check("http://other.test/")  # same address, name not allowlisted, CIDR not either
    with pytest.raises(ToolRefusedError):
        await guard.check("http://127.0.0.2/")


def test_a_bad_allowlist_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        NetGuard(["10.0.0.0/99"])
