"""Tool calling for models whose template knows no tools (as llama-server does).

The tools are described in the system prompt (one signature line each) and the output is constrained to one
JSON object: `{"tool_calls": [{"name": ..., "arguments": {...}}]}` to call tools, or
`{"response": "..."}` to answer (tool_choice auto only). The parser turns the first
into tool calls and streams the second's text as ordinary content.
"""

from __future__ import annotations

import json

from kronk.chat.formats.base import CallSink, Marker, ToolFormat, ToolSpec, call_array
from kronk.chat.formats.signatures import tool_line
from kronk.chat.gbnf import GrammarBuilder, literal, repeat, seq
from kronk.chat.reader import Cursor, Mismatch, Step


class GenericFormat(ToolFormat):
    name = "generic"
    markers = (Marker("{", at_start=True),)

    def parse(self, cur: Cursor, sink: CallSink) -> Step[None]:
        yield from cur.expect("{")
        yield from cur.skip_ws()
        key = yield from cur.json_string()
        yield from cur.skip_ws()
        yield from cur.expect(":")
        yield from cur.skip_ws()
        if key == "tool_calls":
            yield from cur.expect("[")
            yield from call_array(cur, sink)
        elif key == "response":
            yield from cur.need(1)
            if cur.text[cur.pos] == '"':
                yield from cur.json_string_stream(sink.text)
            else:
                yield from cur.json_value(sink.text)
        else:
            raise Mismatch(f"unexpected key {key!r}")
        yield from cur.skip_ws()
        yield from cur.expect("}")

    def section_grammar(self, b: GrammarBuilder, tools: list[ToolSpec], *, parallel: bool) -> str:
        call = self.call_choice(b, tools, lambda t: _call(t))
        calls = seq(call, repeat(seq("ws", literal(","), "ws", call), 0, None)) if parallel else call
        return b.add(
            "tool-calls-object",
            seq(literal("{"), "ws", literal('"tool_calls"'), "ws", literal(":"), "ws", literal("["), "ws", calls, "ws", literal("]"), "ws", literal("}")),
        )

    def response_grammar(self, b: GrammarBuilder, value: str) -> str:
        """`{"response": <value>}`; `value` is `string` or a structured-output rule."""
        return b.add("response-object", seq(literal("{"), "ws", literal('"response"'), "ws", literal(":"), "ws", value, "ws", literal("}")))


def _call(tool: ToolSpec) -> str:
    return seq(
        literal("{"), "ws", literal('"name"'), "ws", literal(":"), "ws", literal(json.dumps(tool.name)), "ws",
        literal(","), "ws", literal('"arguments"'), "ws", literal(":"), "ws", tool.args_rule, "ws", literal("}"),
    )


def system_prompt(tools: list[ToolSpec], *, allow_response: bool, parallel: bool, structured: bool = False) -> str:
    """Instructions that teach a model without tool training our JSON reply format.

    Tools are listed one compact signature line each (see `signatures`): indented
    JSON Schema would fill a small model's context before the conversation starts.
    """
    many = "one or more tool calls" if parallel else "exactly one tool call"
    lines = [
        'You can call these tools. Each line is name(arguments) - what it does; "?" marks an optional argument:',
        *(tool_line(t) for t in tools),
        "",
        "Reply with a single JSON object and nothing else.",
        f'To call tools ({many}): {{"tool_calls": [{{"name": "<tool name>", "arguments": {{...}}}}]}}',
    ]
    if allow_response:
        answer = "<your answer as JSON>" if structured else "<your answer>"
        lines.append(f'To answer the user directly: {{"response": "{answer}"}}')
    return "\n".join(lines)
