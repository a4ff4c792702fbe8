"""Hermes / Qwen: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, one block per call.

Qwen3-Coder and newer Qwen templates write the call inside the same tags as XML:
`<tool_call><function=NAME><parameter=KEY>VALUE</parameter></function></tool_call>`.
The parser accepts both; the grammar writes the one the template uses (`xml`).
"""

from __future__ import annotations

import json
from typing import Any

from kronk.chat import gbnf
from kronk.chat.formats.base import NAME_LIMIT, CallSink, Marker, ToolFormat, ToolSpec, call_object, call_object_grammar
from kronk.chat.gbnf import GAP, GrammarBuilder, literal, repeat, seq
from kronk.chat.json_schema import SchemaConverter
from kronk.chat.reader import Cursor, Mismatch, Step
from kronk.errors import GrammarError

OPEN, CLOSE = "<tool_call>", "</tool_call>"


class HermesFormat(ToolFormat):
    name = "hermes"
    markers = (Marker(OPEN),)

    def __init__(self, *, xml: bool = False) -> None:
        self.xml = xml

    def parse(self, cur: Cursor, sink: CallSink) -> Step[None]:
        while True:
            yield from cur.expect(OPEN)
            yield from cur.skip_ws()
            if (yield from cur.lit("<function=")):
                yield from _xml_call(cur, sink)
            else:
                yield from call_object(cur, sink)
            yield from cur.skip_ws()
            yield from cur.expect(CLOSE)
            yield from cur.skip_ws()
            if not (yield from cur.starts_with(OPEN)):
                return

    def section_grammar(self, b: GrammarBuilder, tools: list[ToolSpec], *, parallel: bool) -> str:
        if self.xml:
            body = self.call_choice(b, tools, lambda t: _xml_call_grammar(b, t))
        else:
            body = self.call_choice(b, tools, lambda t: call_object_grammar(b, t))
        block = b.add("tool-call-block", seq(literal(OPEN), GAP, body, GAP, literal(CLOSE)))
        return seq(block, repeat(seq(literal("\n"), block), 0, None)) if parallel else block


def _xml_call(cur: Cursor, sink: CallSink) -> Step[None]:
    raw_name, _ = yield from cur.until((">",), limit=NAME_LIMIT)
    name = raw_name.strip()
    tool = sink.known_tool(name)
    if tool is None:
        raise Mismatch(f"unknown tool {name!r}")
    sink.begin(name)
    sink.args("{")
    first = True
    while True:
        yield from cur.skip_ws()
        if (yield from cur.lit("</function>")):
            break
        yield from cur.expect("<parameter=")
        key, _ = yield from cur.until((">",), limit=NAME_LIMIT)
        value, _ = yield from cur.until(("</parameter>",), limit=1 << 20)
        text = value[1:] if value.startswith("\n") else value
        text = text[:-1] if text.endswith("\n") else text
        sink.args(("" if first else ", ") + json.dumps(key.strip()) + ": " + _xml_value(tool, key.strip(), text))
        first = False
    sink.args("}")
    sink.end()


def _xml_value(tool: ToolSpec, key: str, text: str) -> str:
    """A parameter's text as JSON: strings stay strings, other declared types are parsed."""
    types = tool.param_types(key)
    if types == {"string"} or (not types and not _looks_json(text)):
        return json.dumps(text, ensure_ascii=False)
    try:
        value: Any = json.loads(text)
    except ValueError:
        return json.dumps(text, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False)


def _looks_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _xml_call_grammar(b: GrammarBuilder, tool: ToolSpec) -> str:
    """`<function=NAME>` + one `<parameter=...>` block per property, in declared order."""
    params = tool.parameters if isinstance(tool.parameters, dict) else {}
    props = params.get("properties", {}) if isinstance(params.get("properties"), dict) else {}
    required = set(params.get("required", []) or [])
    parts = [literal(f"<function={tool.name}>"), GAP]
    for key, schema in props.items():
        types = tool.param_types(key)
        if types == {"string"}:
            value = gbnf.until_literal(b, "\n</parameter>", f"{tool.name}-{key}-text")
        else:
            try:
                value = SchemaConverter(schema, b, prefix=f"{tool.name}-{key}", param="tools").convert()
            except GrammarError:
                value = "value"
            value = seq(value, literal("\n</parameter>"))
        block = seq(literal(f"<parameter={key}>\n"), value, literal("\n"))
        parts.append(block if key in required else repeat(block, 0, 1))
    parts.append(literal("</function>"))
    return seq(*parts)
