"""Mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}, "id": "abcDEF123"}]`.

Newer templates (Mistral Small 3.2, Magistral, Devstral) write
`[TOOL_CALLS]name[ARGS]{...}` per call instead, sometimes with `[CALL_ID]id` before
`[ARGS]`; the parser accepts both and the grammar writes the template's own (`args_tag`).
Mistral templates insist on 9-character alphanumeric call ids, so ours have that shape.
"""

from __future__ import annotations

from kronk.chat.formats.base import (
    NAME_LIMIT,
    CallSink,
    Marker,
    ToolFormat,
    ToolSpec,
    call_array,
    call_object_grammar,
    random_call_id,
)
from kronk.chat.gbnf import GAP, GrammarBuilder, literal, repeat, seq
from kronk.chat.reader import Cursor, Mismatch, Step

TOOL_CALLS, ARGS, CALL_ID = "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"


class MistralFormat(ToolFormat):
    name = "mistral"
    markers = (Marker(TOOL_CALLS),)

    def __init__(self, *, args_tag: bool = False) -> None:
        self.args_tag = args_tag

    def new_call_id(self) -> str:
        return random_call_id(9, prefix="")

    def parse(self, cur: Cursor, sink: CallSink) -> Step[None]:
        yield from cur.expect(TOOL_CALLS)
        yield from cur.skip_ws()
        if (yield from cur.lit("[")):
            yield from call_array(cur, sink)
            return
        while True:
            yield from _tagged_call(cur, sink)
            yield from cur.skip_ws()
            if not (yield from cur.lit(TOOL_CALLS)):
                return

    def section_grammar(self, b: GrammarBuilder, tools: list[ToolSpec], *, parallel: bool) -> str:
        if self.args_tag:
            call = self.call_choice(b, tools, lambda t: seq(literal(TOOL_CALLS), GAP, literal(t.name + ARGS), t.args_rule))
            return seq(call, repeat(call, 0, None)) if parallel else call
        id_member = seq(literal(","), "ws", literal('"id"'), "ws", literal(":"), "ws", '"\\"" [a-zA-Z0-9]{9} "\\""', "ws")
        call = self.call_choice(b, tools, lambda t: call_object_grammar(b, t, extra=id_member))
        calls = seq(call, repeat(seq(literal(", "), call), 0, None)) if parallel else call
        return seq(literal(TOOL_CALLS), GAP, literal("["), calls, literal("]"))


def _tagged_call(cur: Cursor, sink: CallSink) -> Step[None]:
    raw_name, stop = yield from cur.until((ARGS, CALL_ID), limit=NAME_LIMIT)
    name = raw_name.strip()
    if sink.known_tool(name) is None:
        raise Mismatch(f"unknown tool {name!r}")
    if stop == CALL_ID:
        yield from cur.until((ARGS,), limit=NAME_LIMIT)
    yield from cur.skip_ws()
    sink.begin(name)
    yield from cur.json_value(sink.args)
    sink.end()
