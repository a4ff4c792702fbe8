"""Llama 3.1 / 3.2 / 3.3: the whole answer is `{"name": ..., "parameters": {...}}`.

Calls may be separated by `;`. Llama 3.1 also writes `<|python_tag|>` before a call,
either JSON or a built-in tool as `brave_search.call(query="...")`; raw code after
the tag goes to a tool named `python` or `code_interpreter` when the request has one.
"""

from __future__ import annotations

import ast
import json
import re

from kronk.chat.formats.base import CallSink, Marker, ToolFormat, ToolSpec, call_object, call_object_grammar
from kronk.chat.gbnf import GAP, GrammarBuilder, literal, repeat, seq
from kronk.chat.reader import Cursor, Mismatch, Step

PYTHON_TAG = "<|python_tag|>"
_BUILTIN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\.call\((.*)\)\s*$", re.S)
_CODE_TOOLS = ("python", "code_interpreter", "ipython")


class Llama3Format(ToolFormat):
    name = "llama3"
    markers = (
        Marker(PYTHON_TAG),
        Marker("{", at_start=True, trigger=r'\{ ?"name"'),
    )

    def parse(self, cur: Cursor, sink: CallSink) -> Step[None]:
        tagged = yield from cur.lit(PYTHON_TAG)
        yield from cur.skip_ws()
        if tagged and not (yield from cur.starts_with("{")):
            yield from _builtin_call(cur, sink)
            return
        while True:
            yield from call_object(cur, sink, args_keys=("parameters", "arguments"))
            yield from cur.skip_ws()
            if (yield from cur.lit(";")):
                yield from cur.skip_ws()
                continue
            if not (yield from cur.starts_with("{")):
                return

    def section_grammar(self, b: GrammarBuilder, tools: list[ToolSpec], *, parallel: bool) -> str:
        call = self.call_choice(b, tools, lambda t: call_object_grammar(b, t, args_key="parameters"))
        calls = seq(call, repeat(seq(literal(";"), literal(" "), call), 0, None)) if parallel else call
        return seq(repeat(seq(literal(PYTHON_TAG), GAP), 0, 1), calls)


def _builtin_call(cur: Cursor, sink: CallSink) -> Step[None]:
    text = yield from cur.wait_end()
    match = _BUILTIN.match(text)
    if match and sink.known_tool(match.group(1)) is not None:
        args = _kwargs(match.group(2))
        if args is not None:
            sink.begin(match.group(1))
            sink.args(json.dumps(args, ensure_ascii=False))
            sink.end()
            return
    for tool in _CODE_TOOLS:
        if sink.known_tool(tool) is not None:
            sink.begin(tool)
            sink.args(json.dumps({"code": text.strip()}, ensure_ascii=False))
            sink.end()
            return
    raise Mismatch("python_tag without a call")


def _kwargs(source: str) -> dict[str, object] | None:
    """`query="x", n=3` → {"query": "x", "n": 3}; literals only, nothing is evaluated."""
    try:
        call = ast.parse(f"f({source})", mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(call, ast.Call) or call.args:
        return None
    out: dict[str, object] = {}
    for kw in call.keywords:
        if kw.arg is None:
            return None
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
    return out
