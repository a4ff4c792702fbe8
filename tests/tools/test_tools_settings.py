"""The tool options (flag/env/YAML) become the server's ToolHost; it stops with the app."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from kronk.errors import ConfigError
from kronk.server.app import create_app
from kronk.server.tools_host import TOOLS, tools_config
from kronk.settings import load_settings
from kronk.tools import ToolSelection
from kronk.tools.output import cap_text
from tests.tools.conftest import children_of, fetch_server


def test_tool_options_from_env_and_yaml(tmp_path: Path) -> None:
    mcp = tmp_path / "mcp.yaml"
    mcp.write_text("mcpServers:\n  fetch:\n    command: uvx\n    args: [mcp-server-fetch]\n")
    config = tmp_path / "kronk.yaml"
    config.write_text(f"mcp-config: {mcp}\ntools_allow: [127.0.0.1, 10.0.0.0/8]\ntool_timeout: 2m\n")
    settings = load_settings({"config": str(config)}, environ={
        "KRONK_BRAVE_API_KEY": "brave-secret", "KRONK_TOOL_MAX_OUTPUT": "20k", "KRONK_WEB_FETCH_MAX_BYTES": "1MiB"})
    tools = tools_config(settings)
    assert tools.allow == ("127.0.0.1", "10.0.0.0/8") and tools.timeout == 120.0
    assert (tools.max_output, tools.fetch_max_bytes) == (20_000, 1024**2)
    assert [s.name for s in tools.mcp_servers] == ["fetch"] and tools.brave_api_key == "brave-secret"
    assert "brave-secret" not in repr(settings) and "brave-secret" not in repr(tools)
    flags = load_settings({"tools_allow": "127.0.0.1, example.test"}, environ={})
    assert flags.tools_allow == ("127.0.0.1", "example.test")


@pytest.mark.parametrize("flags", [{"tool_timeout": "0"}, {"tool_max_output": "10"}, {"web_fetch_max_bytes": "1"},
                                   {"tools_allow": "10.0.0.0/99"}, {"mcp_config": "/nonexistent/mcp.json"}])
def test_bad_tool_settings_are_config_errors(flags: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        create_app(load_settings({"preload": False, **flags}, environ={}))


def test_output_cap_keeps_the_limit_and_says_so() -> None:
    assert cap_text("short", 100) == ("short", False)
    text, cut = cap_text("x" * 5000, 1000)
    assert cut and 990 <= len(text) <= 1000 and text.endswith("characters shown]") and "of 5000" in text


async def test_mcp_servers_stop_with_the_app(tmp_path: Path) -> None:
    server_config = fetch_server()
    mcp = tmp_path / "mcp.json"
    mcp.write_text(json.dumps({"mcpServers": {"fetch": {"command": server_config.command,
                                                        "args": list(server_config.args)}}}))
    app = create_app(load_settings({"preload": False, "mcp_config": str(mcp)}, environ={}))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    tools = await app[TOOLS].list_tools(ToolSelection.of(servers=["fetch"]))
    assert [t.name for t in tools] == ["fetch"]
    assert any("mcp_server_fetch" in _cmdline(c) for c in children_of(os.getpid()))
    await server.close()
    assert not any("mcp_server_fetch" in _cmdline(c) for c in children_of(os.getpid()))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
