"""Tool-call formats and how one is chosen from a chat template's text."""

from __future__ import annotations

from kronk.chat.formats.base import CallSink, Marker, ToolFormat, ToolSpec
from kronk.chat.formats.deepseek import DeepSeekFormat
from kronk.chat.formats.generic import GenericFormat
from kronk.chat.formats.hermes import HermesFormat
from kronk.chat.formats.llama3 import Llama3Format
from kronk.chat.formats.mistral import MistralFormat

__all__ = [
    "CallSink",
    "DeepSeekFormat",
    "GenericFormat",
    "HermesFormat",
    "Llama3Format",
    "Marker",
    "MistralFormat",
    "ToolFormat",
    "ToolSpec",
    "detect_tool_format",
]


def detect_tool_format(template_source: str, *, supports_tools: bool) -> ToolFormat:
    """The format a template teaches its model, from the markers it renders.

    A template that renders tools in a way we do not know, or none at all, gets the
    generic JSON format (described in the system prompt, enforced by a grammar).
    """
    src = template_source
    if "<tool_call>" in src:
        return HermesFormat(xml="<function=" in src)
    if "[TOOL_CALLS]" in src:
        return MistralFormat(args_tag="[ARGS]" in src)
    if "tool▁call▁begin" in src or "tool▁calls▁begin" in src:
        return DeepSeekFormat(fenced="```json" in src)
    if "<|python_tag|>" in src or ("<|start_header_id|>" in src and supports_tools):
        return Llama3Format()
    return GenericFormat()
