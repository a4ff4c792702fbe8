"""Grammars for tool calls and structured output, and the lazy-trigger patterns.

Lazy grammars (tool_choice auto with a native format) stay off while the model
writes free text and switch on when a trigger pattern matches; llama.cpp then feeds
the text from the pattern's first capture group (or the match) to the grammar, so
each section grammar here starts exactly at its marker. Patterns are ECMAScript
regexes for `std::regex` (llama.cpp searches the whole output generated so far);
with reasoning they only fire after the thinking block is closed, so a model
musing about `<tool_call>` inside `<think>` is not forced into a call.

Forced grammars (tool_choice required/named, response_format, the generic format)
apply from the first token and begin with an optional thinking block when the
model reasons, so structured output and thinking work together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kronk.chat import gbnf
from kronk.chat.formats.base import ToolFormat, ToolSpec, regex_escape
from kronk.chat.formats.generic import GenericFormat
from kronk.chat.gbnf import GrammarBuilder, alt, literal, repeat, seq
from kronk.chat.json_schema import SchemaConverter
from kronk.chat.reasoning import ReasoningTags
from kronk.errors import GrammarError

_THINK_WS = "[ \\t\\r\\n]{0,8}"


@dataclass(slots=True)
class ReasoningSetup:
    tags: ReasoningTags
    opened: bool
    """The prompt opened the thinking block: output starts inside it."""


@dataclass(slots=True)
class BuiltGrammar:
    grammar: str | None = None
    lazy_patterns: list[str] = field(default_factory=list)


def compile_tool_args(b: GrammarBuilder, tools: list[ToolSpec]) -> None:
    """Give every tool its arguments rule.

    A parameters schema we cannot compile falls back to "any JSON object": tool
    schemas are hints for the model, and refusing the whole request for one
    exotic keyword would help nobody.
    """
    gbnf.json_primitives(b)
    for tool in tools:
        try:
            rule = SchemaConverter(tool.parameters, b, prefix=f"{tool.name}-args", param="tools").convert()
        except GrammarError:
            rule = "object"
        tool.args_rule = "object" if rule == "value" else rule


def reasoning_prefix(b: GrammarBuilder, reasoning: ReasoningSetup | None) -> str:
    """GBNF for the thinking block that may precede a forced grammar ("" when none)."""
    if reasoning is None:
        return ""
    body = gbnf.until_literal(b, reasoning.tags.close, "thinking")
    if reasoning.opened:
        return b.add("thinking-block", seq(body, _THINK_WS))
    return b.add("thinking-block", repeat(seq(literal(reasoning.tags.open), body, _THINK_WS), 0, 1))


def trigger_patterns(fmt: ToolFormat, reasoning: ReasoningSetup | None) -> list[str]:
    """llama.cpp trigger regexes for the format's markers (first group = grammar start)."""
    patterns: list[str] = []
    for marker in fmt.markers:
        rx = marker.trigger_regex
        if reasoning is None:
            patterns.append(f"^\\s*({rx})" if marker.at_start else rx)
            continue
        open_, close = regex_escape(reasoning.tags.open), regex_escape(reasoning.tags.close)
        if reasoning.opened:
            patterns.append(f"{close}\\s*({rx})" if marker.at_start else f"{close}[\\s\\S]*?({rx})")
        elif marker.at_start:
            patterns.append(f"^(?:\\s*{open_}[\\s\\S]*?{close})?\\s*({rx})")
        else:
            patterns.append(f"^(?:\\s*{open_}[\\s\\S]*?{close}|(?!\\s*{open_}))[\\s\\S]*?({rx})")
    return patterns


def tool_grammar(
    fmt: ToolFormat,
    tools: list[ToolSpec],
    *,
    mode: str,
    parallel: bool,
    reasoning: ReasoningSetup | None,
    response: str | None = None,
    builder: GrammarBuilder | None = None,
) -> BuiltGrammar:
    """The grammar for a request with tools.

    mode: "auto", "required" or "named" (then `tools` holds just the named tool for
    the grammar). response: a structured-output rule the answer must follow when
    the model does not call a tool.
    """
    b = builder or GrammarBuilder()
    gbnf.json_primitives(b)
    compile_tool_args(b, tools)
    section = fmt.section_grammar(b, tools, parallel=parallel)
    if isinstance(fmt, GenericFormat):
        if mode == "auto":
            section = alt([section, fmt.response_grammar(b, response or "string")])
        return BuiltGrammar(b.render(seq(reasoning_prefix(b, reasoning), section)))
    if mode == "auto" and response is None:
        return BuiltGrammar(b.render(section), trigger_patterns(fmt, reasoning))
    if mode == "auto":
        section = alt([section, response or "string"])
    return BuiltGrammar(b.render(seq(reasoning_prefix(b, reasoning), section)))


def response_grammar(expr: str, b: GrammarBuilder, reasoning: ReasoningSetup | None) -> BuiltGrammar:
    """A forced grammar for structured output `expr` (a rule in `b`)."""
    return BuiltGrammar(b.render(seq(reasoning_prefix(b, reasoning), expr)))
