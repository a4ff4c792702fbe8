"""DeepSeek R1 / V3 / V3.1 tool calls, wrapped in their full-width special tokens.

R1 and V3: `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
```json {...} ```<｜tool▁call▁end｜><｜tool▁calls▁end｜>`. V3.1 drops the `function`
type and the code fence: `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>`.
The parser reads both; the grammar writes the template's own (`fenced`).
"""

from __future__ import annotations

from kronk.chat.formats.base import NAME_LIMIT, CallSink, Marker, ToolFormat, ToolSpec
from kronk.chat.gbnf import GAP, GrammarBuilder, literal, repeat, seq
from kronk.chat.reader import Cursor, Mismatch, Step

CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
CALLS_END = "<｜tool▁calls▁end｜>"
CALL_BEGIN = "<｜tool▁call▁begin｜>"
CALL_END = "<｜tool▁call▁end｜>"
SEP = "<｜tool▁sep｜>"


class DeepSeekFormat(ToolFormat):
    name = "deepseek"
    markers = (Marker(CALLS_BEGIN), Marker(CALL_BEGIN))

    def __init__(self, *, fenced: bool = True) -> None:
        self.fenced = fenced

    def parse(self, cur: Cursor, sink: CallSink) -> Step[None]:
        yield from cur.lit(CALLS_BEGIN)
        while True:
            yield from cur.skip_ws()
            yield from cur.expect(CALL_BEGIN)
            if (yield from cur.lit("function" + SEP)):
                raw_name, _ = yield from cur.until(("\n",), limit=NAME_LIMIT)
            else:
                raw_name, _ = yield from cur.until((SEP,), limit=NAME_LIMIT)
            name = raw_name.strip()
            if sink.known_tool(name) is None:
                raise Mismatch(f"unknown tool {name!r}")
            yield from cur.skip_ws()
            fenced = yield from cur.lit("```json")
            yield from cur.skip_ws()
            sink.begin(name)
            yield from cur.json_value(sink.args)
            sink.end()
            yield from cur.skip_ws()
            if fenced:
                yield from cur.expect("```")
                yield from cur.skip_ws()
            yield from cur.expect(CALL_END)
            yield from cur.skip_ws()
            if not (yield from cur.starts_with(CALL_BEGIN)):
                break
        yield from cur.lit(CALLS_END)

    def section_grammar(self, b: GrammarBuilder, tools: list[ToolSpec], *, parallel: bool) -> str:
        if self.fenced:
            call = self.call_choice(
                b,
                tools,
                lambda t: seq(
                    literal(f"{CALL_BEGIN}function{SEP}{t.name}\n```json\n"), t.args_rule, literal(f"\n```{CALL_END}")
                ),
            )
        else:
            call = self.call_choice(b, tools, lambda t: seq(literal(f"{CALL_BEGIN}{t.name}{SEP}"), t.args_rule, literal(CALL_END)))
        calls = seq(call, repeat(seq(literal("\n"), call), 0, None)) if parallel else call
        # the opening token is optional because either begin marker may trigger the grammar
        return seq(repeat(seq(literal(CALLS_BEGIN), GAP), 0, 1), calls, literal(CALLS_END))
