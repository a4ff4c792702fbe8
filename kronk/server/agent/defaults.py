"""Per-model default server tools, from the model config file (docs/tools.md).

    models:
      SmolLM2-135M-Instruct:
        tools: {builtins: [web_fetch], mcp: [docs]}

`builtins` names built-in tools, `mcp` names servers of the MCP config file. A chat completion
to that model without `kronk_tools` runs them (a request's `kronk_tools` replaces them); a
Responses request gets them next to its own `mcp` / `web_search` tools. They are the
operator's choice, so they need no `tools` grant. A bad shape stops the server at startup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kronk.errors import ConfigError
from kronk.settings import ServerSettings

BUILTINS = ("web_fetch", "web_search")


@dataclass(frozen=True, slots=True)
class ModelTools:
    builtins: tuple[str, ...] = ()
    mcp: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.builtins or self.mcp)


def parse_model_tools(value: Any, where: str) -> ModelTools:
    """A model config's `tools` entry; ConfigError names what is wrong."""
    if value is None:
        return ModelTools()
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping with builtins and/or mcp")
    unknown = set(value) - {"builtins", "mcp"}
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: builtins, mcp)")
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("builtins", "mcp"):
        names = value.get(key) or []
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{where}.{key}: must be a list of names")
        lists[key] = tuple(names)
    bad = [n for n in lists["builtins"] if n not in BUILTINS]
    if bad:
        raise ConfigError(f"{where}.builtins: {bad[0]!r} is not a built-in tool ({', '.join(BUILTINS)})")
    return ModelTools(lists["builtins"], lists["mcp"])


def check_model_tools(settings: ServerSettings) -> None:
    """Every model config entry's `tools`, checked once at startup."""
    for model_id, entry in settings.per_model.items():
        parse_model_tools(entry.get("tools"), f"model config {model_id}: tools")


def model_tools(settings: ServerSettings, model: str | None) -> ModelTools:
    """The default server tools of the model a request names (None / "": the default model)."""
    entry = settings.per_model.get(model or settings.default_model or "")
    return parse_model_tools(entry.get("tools"), "tools") if entry else ModelTools()
