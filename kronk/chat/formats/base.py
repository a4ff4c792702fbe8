"""What every tool-call format provides: markers, a streaming parser, a grammar.

A format is chosen from the template text (see `kronk.chat.formats.detect`). The
output parser watches content for the format's start `markers`; once one appears it
hands the text to the format's `parse` generator, which reports calls to a
`CallSink`. For constrained decoding, `section_grammar` describes the same tool-call
section in GBNF, starting at the marker, so a lazy grammar can be switched on by a
trigger pattern that matches the marker.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from kronk.chat.gbnf import GrammarBuilder, alt, literal, seq
from kronk.chat.reader import Cursor, Mismatch, Step

_ALNUM = string.ascii_letters + string.digits
NAME_LIMIT = 128
"""How far a parser reads for the end of a tool or parameter name before the text is not a call."""


@dataclass(frozen=True, slots=True)
class Marker:
    """Text that starts a tool-call section. `at_start`: only at the very start of the answer."""

    text: str
    at_start: bool = False
    trigger: str | None = None
    """Regex (llama.cpp ECMAScript) that proves the section began; default: the escaped text."""

    @property
    def trigger_regex(self) -> str:
        return self.trigger if self.trigger is not None else regex_escape(self.text)


@dataclass(slots=True)
class ToolSpec:
    """One tool of the request, reduced to what the formats and grammars need."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    args_rule: str = "object"
    """GBNF rule for the arguments object (set when the grammar is built)."""

    def to_openai(self) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def param_types(self, param: str) -> set[str]:
        prop = self.parameters.get("properties", {}).get(param)
        if not isinstance(prop, dict):
            return set()
        kind = prop.get("type")
        return set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else set()


class CallSink(Protocol):
    """Where a format parser reports what it found."""

    def known_tool(self, name: str) -> ToolSpec | None: ...

    def begin(self, name: str) -> None: ...

    def args(self, fragment: str) -> None: ...

    def end(self) -> None: ...

    def text(self, fragment: str) -> None: ...


def regex_escape(text: str) -> str:
    """Escape for ECMAScript regexes (Python's `re.escape` escapes too much for std::regex)."""
    return re.sub(r"[\\^$.|?*+()\[\]{}]", lambda m: "\\" + m.group(), text)


def random_call_id(length: int = 24, prefix: str = "call_") -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def normalize_arguments(raw: str | None) -> str:
    """Arguments given whole: missing or null → `{}`, a JSON string holding JSON → its content."""
    if raw is None or raw == "null":
        return "{}"
    if raw.startswith('"'):
        try:
            inner = json.loads(raw)
            json.loads(inner)
        except ValueError:
            return raw
        return inner
    return raw


class ToolFormat(ABC):
    """One family's tool-call syntax."""

    name: ClassVar[str]
    markers: ClassVar[tuple[Marker, ...]]

    def new_call_id(self) -> str:
        return random_call_id()

    @abstractmethod
    def parse(self, cur: Cursor, sink: CallSink) -> Step[None]:
        """Read one tool-call section that starts at one of `markers`."""

    @abstractmethod
    def section_grammar(self, b: GrammarBuilder, tools: list[ToolSpec], *, parallel: bool) -> str:
        """GBNF for a section with at least one call (one only unless `parallel`)."""

    def call_choice(self, b: GrammarBuilder, tools: list[ToolSpec], make: Callable[[ToolSpec], str]) -> str:
        """A rule with one alternative per tool built by `make(tool)`."""
        return b.add(f"{self.name}-call", alt([make(t) for t in tools]))


# --- shared parsing pieces -------------------------------------------------------


def call_object(
    cur: Cursor,
    sink: CallSink,
    *,
    name_keys: tuple[str, ...] = ("name",),
    args_keys: tuple[str, ...] = ("arguments", "parameters"),
) -> Step[None]:
    """`{"name": ..., "arguments": {...}}` in any key order; arguments stream when the name came first."""
    yield from cur.expect("{")
    name: str | None = None
    raw_args: str | None = None
    started = False
    yield from cur.skip_ws()
    if (yield from cur.lit("}")):
        raise Mismatch("empty call object")
    while True:
        key = yield from cur.json_string()
        yield from cur.skip_ws()
        yield from cur.expect(":")
        yield from cur.skip_ws()
        if key in name_keys and name is None:
            name = yield from cur.json_string()
            if sink.known_tool(name) is None:
                raise Mismatch(f"unknown tool {name!r}")
        elif key in args_keys and raw_args is None and not started:
            yield from cur.need(1)
            if name is not None and cur.text[cur.pos] == "{":
                sink.begin(name)
                started = True
                yield from cur.json_value(sink.args)
            else:
                raw_args = yield from cur.json_value()
        else:
            yield from cur.json_value()
        yield from cur.skip_ws()
        if (yield from cur.lit(",")):
            yield from cur.skip_ws()
            continue
        # the object is complete once "}" arrives; report the call before waiting on more text
        if not started and name is not None and (yield from cur.starts_with("}")):
            sink.begin(name)
            sink.args(normalize_arguments(raw_args))
            started = True
        yield from cur.expect("}")
        break
    if not started:
        raise Mismatch("call object without a name")
    sink.end()


def call_array(cur: Cursor, sink: CallSink) -> Step[None]:
    """The rest of a JSON array of call objects, after its `[`: `{...}, {...}]`."""
    while True:
        yield from cur.skip_ws()
        yield from call_object(cur, sink)
        yield from cur.skip_ws()
        if not (yield from cur.lit(",")):
            break
    yield from cur.expect("]")


def call_object_grammar(b: GrammarBuilder, tool: ToolSpec, *, args_key: str = "arguments", extra: str = "") -> str:
    """GBNF for `{"name": "<tool>", "<args_key>": <arguments>}` (plus `extra` members)."""
    return seq(
        literal("{"), "ws",
        literal('"name"'), "ws", literal(":"), "ws", literal(json.dumps(tool.name)), "ws",
        literal(","), "ws",
        literal(json.dumps(args_key)), "ws", literal(":"), "ws", tool.args_rule, "ws",
        extra,
        literal("}"),
    )
