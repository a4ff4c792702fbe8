"""The tool host's configuration and the MCP config file reader.

The MCP config file has the shape MCP clients already use (Claude Desktop, editors):

    {"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"], "env": {...}},
                    "docs":  {"url": "https://example.com/mcp", "headers": {"Authorization": "..."}}}}

JSON or YAML. Kronk's own settings (timeouts, allowlist, search backends) stay in its options
(kronk/settings.py); kronk/server/tools_host.py turns those into a `ToolsConfig`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kronk.errors import ConfigError
from kronk.tools.types import McpServerConfig

SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""Configured server names: also the `source` of their tools, so no `#` (ad-hoc keys use it)."""


@dataclass(frozen=True, slots=True)
class ToolsConfig:
    """Everything a ToolHost needs; built from the server settings."""

    mcp_servers: tuple[McpServerConfig, ...] = ()
    allow: tuple[str, ...] = ()
    """Hosts and CIDRs the SSRF guard lets through although they are private/loopback/..."""
    searxng_url: str | None = None
    """A SearXNG instance's search endpoint (`https://searx.example/search`); JSON format is asked for."""
    brave_api_key: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    """Default per-call time limit in seconds."""
    max_output: int = 100_000
    """Characters of tool output kept (the rest is cut, `ToolResult.truncated`)."""
    fetch_max_bytes: int = 5 * 1024 * 1024
    """Bytes web_fetch reads from a response body at most."""
    max_redirects: int = 5
    list_ttl: float = 300.0
    """Seconds a server's tool list is reused before it is asked again."""
    user_agent: str = "Kronk-Tools/1 (+https://github.com/ardanlabs/kronk)"


def _str_map(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{where} must be a mapping of names to strings")
    return {k: str(v) for k, v in value.items()}


def parse_server(name: str, raw: object, where: str) -> McpServerConfig:
    """One `mcpServers` entry; secrets in env/headers are never echoed in the error messages."""
    if not SERVER_NAME.fullmatch(name):
        raise ConfigError(f"{where}: server name {name!r} must be letters, digits, '_', '.', '-' (max 64)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: server {name!r} must be a mapping with `command` or `url`")
    known = {"command", "args", "env", "cwd", "url", "headers", "timeout", "type", "transport", "disabled"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: server {name!r}: unknown key(s) {', '.join(unknown)}")
    command, url = raw.get("command"), raw.get("url")
    if (command is None) == (url is None):
        raise ConfigError(f"{where}: server {name!r} needs exactly one of `command` (stdio) or `url` (HTTP)")
    args = raw.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
        raise ConfigError(f"{where}: server {name!r}: `args` must be a list of strings")
    if command is not None and not isinstance(command, str):
        raise ConfigError(f"{where}: server {name!r}: `command` must be a string")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise ConfigError(f"{where}: server {name!r}: `url` must be an http(s) URL")
    timeout = raw.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"{where}: server {name!r}: `timeout` must be a positive number of seconds")
    return McpServerConfig(
        name=name, command=command, args=tuple(str(a) for a in args),
        env=_str_map(raw.get("env"), f"{where}: server {name!r}: `env`"),
        cwd=str(raw["cwd"]) if raw.get("cwd") else None, url=url,
        headers=_str_map(raw.get("headers"), f"{where}: server {name!r}: `headers`"),
        timeout=float(timeout) if timeout is not None else None,
    )


def read_mcp_config(path: Path) -> tuple[McpServerConfig, ...]:
    """The servers of an MCP config file (JSON or YAML); entries with `disabled: true` are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read MCP config file {path}: {exc.strerror or exc}") from None
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"MCP config file {path} is not valid JSON/YAML: {exc}") from None
    if data is None:
        return ()
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers", {}), dict):
        raise ConfigError(f"MCP config file {path} must be {{\"mcpServers\": {{name: {{...}}}}}}")
    servers = data.get("mcpServers") or {}
    return tuple(parse_server(str(name), raw, f"MCP config file {path}")
                 for name, raw in servers.items() if not (isinstance(raw, dict) and raw.get("disabled") is True))
