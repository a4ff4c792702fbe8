"""What a model can serve, as one small value both the store and the catalog produce.

The store and the catalog describe each model with it (`/v1/models`, `kronk model
list`, the catalog's filters). What a request needs is checked by `kronk.sdk.admission`
against the model's metadata before loading and against the loaded model after.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kronk.errors import CapabilityError, StoreError

ToolFormat = Literal["hermes", "llama3", "mistral", "generic", "none"]
TOOL_FORMATS: tuple[str, ...] = ("hermes", "llama3", "mistral", "generic", "none")

CAPABILITY_NAMES: tuple[str, ...] = (
    "chat", "completion", "embedding", "rerank", "tools", "reasoning", "vision", "audio", "fim",
)

_WHAT: dict[str, str] = {
    "chat": "chat completions",
    "completion": "text completions",
    "embedding": "embeddings",
    "rerank": "reranking",
    "tools": "tool calls",
    "reasoning": "reasoning",
    "vision": "image input",
    "audio": "audio input",
    "fim": "fill-in-the-middle",
}


@dataclass(frozen=True, slots=True)
class Capabilities:
    """Flags for each kind of request, plus the tool-call wire format of the template."""

    chat: bool = False
    completion: bool = False
    embedding: bool = False
    rerank: bool = False
    tools: bool = False
    reasoning: bool = False
    vision: bool = False
    audio: bool = False
    fim: bool = False
    tool_format: str = "none"

    @classmethod
    def from_names(cls, names: Iterable[str], tool_format: str = "none") -> Capabilities:
        """From a list like `["chat", "tools"]` (the catalog's form); unknown names are an error."""
        flags: dict[str, Any] = {}
        for name in names:
            if name not in CAPABILITY_NAMES:
                raise StoreError(f"unknown capability {name!r} (known: {', '.join(CAPABILITY_NAMES)})")
            flags[name] = True
        if tool_format not in TOOL_FORMATS:
            raise StoreError(f"unknown tool format {tool_format!r} (known: {', '.join(TOOL_FORMATS)})")
        if flags.get("tools") and tool_format == "none":
            tool_format = "generic"
        return cls(tool_format=tool_format, **flags)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Capabilities:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def names(self) -> list[str]:
        """The names of the capabilities that are on, in a fixed order."""
        return [name for name in CAPABILITY_NAMES if getattr(self, name)]

    def union(self, other: Capabilities) -> Capabilities:
        """Every flag that either side has; the first known tool format wins."""
        flags = {name: getattr(self, name) or getattr(other, name) for name in CAPABILITY_NAMES}
        tool_format = self.tool_format if self.tool_format != "none" else other.tool_format
        return Capabilities(tool_format=tool_format, **flags)

    def supports(self, capability: str) -> bool:
        if capability not in CAPABILITY_NAMES:
            raise ValueError(f"unknown capability {capability!r}")
        return bool(getattr(self, capability))

    def require(self, capability: str, model_id: str, param: str | None = None) -> None:
        """Raise CapabilityError unless the model can serve `capability`."""
        if not self.supports(capability):
            have = ", ".join(self.names()) or "nothing"
            raise CapabilityError(
                f"model {model_id!r} does not support {_WHAT[capability]} (it supports: {have})", param=param
            )
