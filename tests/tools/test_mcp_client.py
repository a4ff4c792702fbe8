"""The MCP client against real servers: mcp-server-fetch over stdio, the SDK test server over HTTP."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kronk.errors import ConfigError, ToolNotFoundError, ToolRefusedError, ToolTimeoutError, ToolUnavailableError
from kronk.tools import McpServerConfig, ToolHost, ToolsConfig, ToolSelection, read_mcp_config
from tests.tools.conftest import ROOT, HttpMcp, Site, children_of, fetch_server, wait_for_port


@pytest.fixture
async def fetch_host() -> ToolHost:
    host = ToolHost(ToolsConfig(mcp_servers=(fetch_server(),), timeout=60))
    yield host  # type: ignore[misc]
    await host.aclose()


async def test_stdio_server_tools_are_listed_and_called(fetch_host: ToolHost, site: Site) -> None:
    tools = await fetch_host.list_tools(ToolSelection.of(servers=["fetch"]))
    assert [(t.name, t.source) for t in tools] == [("fetch", "fetch")]
    assert tools[0].input_schema["properties"]["url"]["type"] == "string"
    result = await fetch_host.call("fetch", {"url": site.url("/page")}, source="fetch")
    assert not result.is_error and "Llamas" in result.text and "domesticated" in result.text
    assert site.hits["/page"] == 1


async def test_stdio_tool_errors_are_results_and_unknown_tools_errors(fetch_host: ToolHost, site: Site) -> None:
    result = await fetch_host.call("fetch", {"url": site.url("/missing")})
    assert result.is_error and "404" in result.text
    with pytest.raises(ToolNotFoundError):
        await fetch_host.call("no_such_tool", {}, source="fetch")
    with pytest.raises(ToolNotFoundError):
        await fetch_host.list_tools(ToolSelection.of(servers=["nope"]))


async def test_a_killed_stdio_server_is_restarted_on_next_use(fetch_host: ToolHost, site: Site) -> None:
    await fetch_host.list_tools(ToolSelection.of(servers=["fetch"]))
    connection = fetch_host._servers["fetch"]
    (pid,) = [child for child in children_of(os.getpid()) if "mcp_server_fetch" in _cmdline(child)]
    os.kill(pid, signal.SIGKILL)
    while connection.running:  # the SDK notices the closed pipe
        await asyncio.sleep(0.02)
    result = await fetch_host.call("fetch", {"url": site.url("/page")})
    assert "Llamas" in result.text and connection.starts == 2
    assert pid not in children_of(os.getpid())


async def test_servers_stop_with_the_host(site: Site) -> None:
    host = ToolHost(ToolsConfig(mcp_servers=(fetch_server(),)))
    await host.list_tools(ToolSelection.of(servers=["fetch"]))
    before = [c for c in children_of(os.getpid()) if "mcp_server_fetch" in _cmdline(c)]
    assert len(before) == 1
    await host.aclose()
    assert not [c for c in children_of(os.getpid()) if "mcp_server_fetch" in _cmdline(c)]


async def test_a_server_that_cannot_start_is_unavailable_not_a_crash() -> None:
    broken = McpServerConfig(name="broken", command=sys.executable, args=("-c", "import sys; sys.exit(3)"))
    host = ToolHost(ToolsConfig(mcp_servers=(broken,), timeout=20))
    try:
        with pytest.raises(ToolUnavailableError, match="broken"):
            await host.list_tools(ToolSelection.of(servers=["broken"]))
    finally:
        await host.aclose()


# -- streamable HTTP -------------------------------------------------------------------------------

async def test_http_server_tools_listed_called_and_failures_surfaced(http_mcp: HttpMcp) -> None:
    server = McpServerConfig(name="calc", url=http_mcp.url, headers={"Authorization": "Bearer sekrit"})
    host = ToolHost(ToolsConfig(mcp_servers=(server,), max_output=2000))
    try:
        tools = await host.list_tools(ToolSelection.of(servers=["calc"], allowed_tools=["add", "fail"]))
        assert sorted(t.name for t in tools) == ["add", "fail"]
        added = await host.call("add", {"a": 2, "b": 40})
        assert added.text == "42" and added.structured == {"result": 42} and not added.is_error
        failed = await host.call("fail", {"reason": "llama overflow"}, source="calc")
        assert failed.is_error and "llama overflow" in failed.text
        assert (await host.call("whoami", {})).text == "Bearer sekrit"
        long = await host.call("shout", {"text": "a" * 10000})
        assert long.truncated and len(long.text) <= 2000
        with pytest.raises(ToolTimeoutError):
            await host.call("slow", {"seconds": 30}, timeout=0.5)
        assert (await host.call("add", {"a": 1, "b": 1})).text == "2"  # the connection is still good
    finally:
        await host.aclose()


async def test_request_named_servers_go_through_the_ssrf_guard(http_mcp: HttpMcp) -> None:
    refused = ToolHost(ToolsConfig())
    with pytest.raises(ToolRefusedError):
        await refused.connect_url("calc", http_mcp.url)
    allowed = ToolHost(ToolsConfig(allow=("127.0.0.1",)))
    try:
        key = await allowed.connect_url("calc", http_mcp.url, {"Authorization": "Bearer adhoc"})
        assert key.startswith("calc#") and key == await allowed.connect_url("calc", http_mcp.url,
                                                                             {"Authorization": "Bearer adhoc"})
        tools = await allowed.list_tools(ToolSelection.of(servers=[key]))
        assert {t.source for t in tools} == {key} and "add" in {t.name for t in tools}
        assert (await allowed.call("whoami", {}, source=key)).text == "Bearer adhoc"
    finally:
        await allowed.aclose()


async def test_a_dead_http_server_is_unavailable_then_reconnected(http_mcp: HttpMcp) -> None:
    host = ToolHost(ToolsConfig(mcp_servers=(McpServerConfig(name="calc", url=http_mcp.url),), timeout=10))
    port = int(http_mcp.url.split(":")[2].split("/")[0])
    try:
        assert (await host.call("add", {"a": 1, "b": 2})).text == "3"
        http_mcp.process.kill()
        http_mcp.process.wait()
        with pytest.raises(ToolUnavailableError):
            await host.call("add", {"a": 1, "b": 2}, source="calc")
        http_mcp.process = subprocess.Popen([sys.executable, "-m", "tests.tools.mcp_http_server", str(port)],
                                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        await wait_for_port(port, http_mcp.process)
        assert (await host.call("add", {"a": 2, "b": 2})).text == "4"
        assert host._servers["calc"].starts == 2
    finally:
        await host.aclose()


# -- the config file -----------------------------------------------------------------------------

def test_the_config_file_reads_the_clients_shape(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"], '
                    '"env": {"TOKEN": "hunter2"}}, "docs": {"url": "https://docs.test/mcp", '
                    '"headers": {"Authorization": "Bearer hunter3"}, "timeout": 5}, '
                    '"off": {"command": "x", "disabled": true}}}')
    fetch, docs = read_mcp_config(path)
    assert (fetch.name, fetch.command, fetch.args, fetch.env, fetch.transport) == (
        "fetch", "uvx", ("mcp-server-fetch",), {"TOKEN": "hunter2"}, "stdio")
    assert (docs.url, docs.headers, docs.timeout, docs.transport) == (
        "https://docs.test/mcp", {"Authorization": "Bearer hunter3"}, 5.0, "http")
    assert "hunter2" not in repr(fetch) and "hunter3" not in repr(docs)


@pytest.mark.parametrize("text", [
    "[1, 2]", '{"mcpServers": []}', '{"mcpServers": {"x": {}}}', '{"mcpServers": {"x": {"command": "a", "url": "b"}}}',
    '{"mcpServers": {"x": {"url": "ftp://a"}}}', '{"mcpServers": {"x#y": {"command": "a"}}}',
    '{"mcpServers": {"x": {"command": "a", "args": "b"}}}', '{"mcpServers": {"x": {"command": "a", "colour": 1}}}',
    '{"mcpServers": {"x": {"command": "a", "timeout": -1}}}', "{not json",
])
def test_bad_config_files_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(text)
    with pytest.raises(ConfigError):
        read_mcp_config(path)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def test_listing_everything_leaves_out_a_broken_server_but_a_selection_fails() -> None:
    broken = McpServerConfig(name="broken", command=sys.executable, args=("-c", "raise SystemExit(3)"))
    host = ToolHost(ToolsConfig(mcp_servers=(broken,), timeout=20))
    try:
        assert [t.name for t in await host.list_tools(None)] == ["web_fetch"]
        with pytest.raises(ToolUnavailableError):
            await host.list_tools(ToolSelection.of(servers=["broken"]))
        with pytest.raises(ToolNotFoundError):
            await host.call("anything", {})
    finally:
        await host.aclose()
    with pytest.raises(ToolUnavailableError, match="closed"):
        await host.call("web_fetch", {"url": "http://127.0.0.1/"})


async def test_env_and_header_secrets_never_reach_the_logs(http_mcp: HttpMcp, site: Site,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    calc = McpServerConfig(name="calc", url=http_mcp.url, headers={"Authorization": "Bearer hdr-s3cr3t"})
    host = ToolHost(ToolsConfig(mcp_servers=(fetch_server(), calc), timeout=60))
    try:
        assert {t.source for t in await host.list_tools(None)} == {"builtin", "fetch", "calc"}
        await host.call("fetch", {"url": site.url("/page")})
        assert (await host.call("whoami", {})).text == "Bearer hdr-s3cr3t"
        logging.getLogger("test").info("config: %r", host.config)
    finally:
        await host.aclose()
    assert "fetch" in caplog.text and "s3cr3t" not in caplog.text
