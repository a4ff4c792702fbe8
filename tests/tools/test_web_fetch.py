"""web_fetch against a local site: conversion, limits, content types, redirects and the SSRF battery.

Every refusal is proven to come before any connection: the site counts its hits, hostnames
go through a stub resolver, and the suite's loopback guard fails a test that connects anywhere
but loopback.
"""

from __future__ import annotations

import pytest

from kronk.errors import InvalidRequestError, ToolError, ToolRefusedError, ToolTimeoutError
from kronk.tools import ToolHost, ToolsConfig
from tests.tools.conftest import Site, StubResolver


def host_for(site: Site, resolver: StubResolver | None = None, **config: object) -> ToolHost:
    allow = config.pop("allow", ("127.0.0.1",))
    return ToolHost(ToolsConfig(allow=allow, **config), resolver=resolver or StubResolver())  # type: ignore[arg-type]


async def test_html_becomes_markdown_without_scripts_styles_or_navigation(site: Site) -> None:
    result = await host_for(site).call("web_fetch", {"url": site.url("/page")})
    assert not result.is_error and not result.truncated
    assert result.text.startswith(f"Contents of {site.url('/page')} (Kronk Test Page):")
    assert "# Llamas" in result.text
    assert "**domesticated**" in result.text
    assert "- Wool" in result.text and "[more](https://example.org/llama)" in result.text
    for hidden in ("do not show", "color:red", "footer text", "About"):
        assert hidden not in result.text
    assert result.structured is not None
    assert {k: result.structured[k] for k in ("url", "status", "content_type", "title")} == {
        "url": site.url("/page"), "status": 200, "content_type": "text/html", "title": "Kronk Test Page"}


async def test_text_and_json_pass_through(site: Site) -> None:
    host = host_for(site)
    assert (await host.call("web_fetch", {"url": site.url("/text")})).text.endswith("plain words")
    assert '"animal": "llama"' in (await host.call("web_fetch", {"url": site.url("/data")})).text
    assert (await host.call("web_fetch", {"url": site.url("/odd-charset")})).text.endswith("caf\u00e9")


async def test_big_pages_are_cut_to_the_output_cap_and_the_byte_limit(site: Site) -> None:
    result = await host_for(site, max_output=5000).call("web_fetch", {"url": site.url("/big")})
    assert result.truncated and len(result.text) <= 5000 + 200
    assert "[output truncated: first" in result.text and "Paragraph 0 about llamas" in result.text
    shorter = await host_for(site).call("web_fetch", {"url": site.url("/big"), "max_length": 300})
    assert shorter.truncated and len(shorter.text) < 450 and "Paragraph 50 " not in shorter.text
    few_bytes = await host_for(site, fetch_max_bytes=2048).call("web_fetch", {"url": site.url("/big")})
    assert few_bytes.truncated and few_bytes.structured is not None and few_bytes.structured["bytes"] == 2048


async def test_redirects_are_followed_hop_by_hop(site: Site) -> None:
    host = host_for(site)
    result = await host.call("web_fetch", {"url": site.url("/redirect")})
    assert "# Llamas" in result.text and result.structured is not None
    assert result.structured["url"] == site.url("/page")
    assert "# Llamas" in (await host.call("web_fetch", {"url": site.url("/redirect-307")})).text
    assert "# Llamas" in (await host.call("web_fetch", {"url": site.url("/chain/4")})).text
    with pytest.raises(ToolError, match="too many redirects"):
        await host.call("web_fetch", {"url": site.url("/loop")})
    assert site.hits["/loop"] == 6


async def test_errors_and_other_content_types_are_tool_errors(site: Site) -> None:
    host = host_for(site)
    with pytest.raises(ToolError, match="HTTP 404"):
        await host.call("web_fetch", {"url": site.url("/missing")})
    with pytest.raises(ToolError, match="application/octet-stream"):
        await host.call("web_fetch", {"url": site.url("/binary")})
    with pytest.raises(InvalidRequestError):
        await host.call("web_fetch", {})
    with pytest.raises(InvalidRequestError):
        await host.call("web_fetch", {"url": site.url("/page"), "max_length": 0})


async def test_a_time_limit_ends_the_fetch(site: Site) -> None:
    with pytest.raises(ToolTimeoutError):
        await host_for(site).call("web_fetch", {"url": site.url("/big")}, timeout=1e-9)


# -- the SSRF battery ------------------------------------------------------------------------------

async def test_loopback_without_the_allowlist_is_refused_before_connecting(site: Site) -> None:
    with pytest.raises(ToolRefusedError, match="loopback"):
        await host_for(site, allow=()).call("web_fetch", {"url": site.url("/page")})
    assert site.hits == {}


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/",
                                 "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"])
async def test_private_metadata_and_v6_loopback_are_refused(site: Site, url: str) -> None:
    resolver = StubResolver()
    with pytest.raises(ToolRefusedError):
        await host_for(site, resolver, allow=()).call("web_fetch", {"url": url})
    assert resolver.asked == []


@pytest.mark.parametrize("path", ["/to-private", "/to-metadata", "/to-v6-loopback"])
async def test_a_redirect_from_an_allowed_host_to_a_private_one_is_refused(site: Site, path: str) -> None:
    with pytest.raises(ToolRefusedError):
        await host_for(site).call("web_fetch", {"url": site.url(path)})
    assert site.hits == {path: 1}


async def test_a_name_resolving_to_loopback_is_refused_before_connecting(site: Site) -> None:
    port = site.base.rsplit(":", 1)[1]
    resolver = StubResolver({"rebind.test": ["127.0.0.1"]})
    with pytest.raises(ToolRefusedError, match=r"rebind.test \(127.0.0.1\)"):
        await host_for(site, resolver, allow=()).call("web_fetch", {"url": f"http://rebind.test:{port}/page"})
    assert resolver.asked == ["rebind.test"] and site.hits == {}


async def test_an_allowlisted_name_connects_to_the_address_the_guard_checked(site: Site) -> None:
    """No DNS for `site.test` exists: the page can only come from the stub's pinned address."""
    port = site.base.rsplit(":", 1)[1]
    resolver = StubResolver({"site.test": ["127.0.0.1"]})
    result = await host_for(site, resolver, allow=("site.test",)).call(
        "web_fetch", {"url": f"http://site.test:{port}/page"})
    assert "# Llamas" in result.text
    assert resolver.asked == ["site.test"] and site.hits == {"/page": 1}
