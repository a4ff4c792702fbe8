"""Streaming parser: raw generated text → content, reasoning and tool-call events.

Fed the model's text piece by piece, `ChatOutputParser` emits `TextDelta`,
`ReasoningDelta` and `ToolCallDelta` events (from `kronk.engine.types`). Text that
could be the start of a marker (`<tool_call>`, `<think>`, ...) is held back until it
is decided, so marker text never leaks into content; everything else goes out at
once. Whitespace is trimmed around thinking blocks and before a tool call.

Tool-call arguments stream as they are generated when the format puts the name
first (all common formats do). A call cut off by the end of the output keeps the
arguments it had (`incomplete_tool_call` tells); a "tool call" that never got as far
as its name is reported as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence

from kronk.chat.formats.base import Marker, ToolFormat, ToolSpec
from kronk.chat.reader import Cursor, EndOfInput, Mismatch, Step
from kronk.chat.reasoning import ReasoningTags
from kronk.engine.types import Event, ReasoningDelta, TextDelta, ToolCallDelta

_WS = " \t\r\n"
_CONTENT, _REASONING, _SECTION = "content", "reasoning", "section"


class ChatOutputParser:
    """One choice's output parser; create one per generated choice.

    tool_format/tools: parse tool calls of these tools (none: no tool parsing).
    reasoning: the thinking tags to split off (None: no reasoning parsing).
    starts_in_reasoning: the prompt opened the thinking block already.
    """

    def __init__(
        self,
        *,
        tool_format: ToolFormat | None = None,
        tools: Sequence[ToolSpec] = (),
        reasoning: ReasoningTags | None = None,
        starts_in_reasoning: bool = False,
        choice: int = 0,
    ) -> None:
        self._format = tool_format if tools else None
        self._tools = {t.name: t for t in tools}
        self._tags = reasoning
        self._choice = choice
        self._cur = Cursor()
        self._state = _REASONING if reasoning is not None and starts_in_reasoning else _CONTENT
        self._think_allowed = reasoning is not None and not starts_in_reasoning
        self._reasoning_fresh = True
        self._strip_lead = False
        self._content_started = False
        self._section: Step[None] | None = None
        self._section_start = 0
        self._section_marker: Marker | None = None
        self._section_mark = 0
        self._pushed = 0
        self._open_call: int | None = None
        self._calls = 0
        self._out: list[Event] = []
        self._finished = False
        self.incomplete_tool_call = False
        """True when the output ended inside a tool call's arguments."""

    # --- public API ----------------------------------------------------------------

    @property
    def tool_calls_emitted(self) -> int:
        return self._calls

    @property
    def has_tool_calls(self) -> bool:
        """Any tool call was emitted (the finish reason becomes "tool_calls")."""
        return self._calls > 0

    def feed(self, text: str) -> list[Event]:
        """Events for the next piece of generated text."""
        if self._finished:
            raise RuntimeError("ChatOutputParser.feed() after finish()")
        if text:
            if self._state != _SECTION:
                self._cur.compact()
            self._cur.push(text)
            self._run()
        return self._take()

    def finish(self) -> list[Event]:
        """Flush: the output is complete; held-back text is decided now."""
        if self._finished:
            return []
        self._cur.final = True
        self._run()
        if self._state == _SECTION:  # a format parser must not wait at the end; be safe anyway
            self._abort_section(ended=True)
            self._run()
        rest = self._cur.rest()
        self._cur.pos = len(self._cur.text)
        if self._state == _REASONING:
            self._emit_reasoning(rest, closing=True)
        else:
            self._emit_content(rest)
        if self._open_call is not None:
            self._open_call = None
            self.incomplete_tool_call = True
        self._finished = True
        return self._take()

    # --- CallSink (used by the format parsers) ---------------------------------------

    def known_tool(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def begin(self, name: str) -> None:
        assert self._format is not None
        index = self._calls
        self._calls += 1
        self._open_call = index
        self._push(ToolCallDelta(index=index, id=self._format.new_call_id(), name=name, choice=self._choice))

    def args(self, fragment: str) -> None:
        if fragment and self._open_call is not None:
            self._push(ToolCallDelta(index=self._open_call, arguments=fragment, choice=self._choice))

    def end(self) -> None:
        self._open_call = None

    def text(self, fragment: str) -> None:
        self._emit_content(fragment)

    # --- the state machine --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if self._state == _CONTENT:
                progressed = self._content_step()
            elif self._state == _REASONING:
                progressed = self._reasoning_step()
            else:
                progressed = self._section_step()
            if not progressed:
                return

    def _markers(self) -> list[tuple[str, Marker]]:
        at_start = not self._content_started
        found: list[tuple[str, Marker]] = []
        if self._think_allowed and at_start and self._tags is not None:
            found.append(("think", Marker(self._tags.open, at_start=True)))
        if self._format is not None:
            found += [("tool", m) for m in self._format.markers if at_start or not m.at_start]
        return found

    def _content_step(self) -> bool:
        text = self._cur.rest()
        if not text:
            return False
        markers = self._markers()
        best: tuple[int, str, Marker] | None = None
        for kind, marker in markers:
            if marker.at_start:
                stripped = text.lstrip(_WS)
                idx = len(text) - len(stripped) if stripped.startswith(marker.text) else -1
            else:
                idx = text.find(marker.text)
            if idx >= 0 and (best is None or idx < best[0]):
                best = (idx, kind, marker)
        if best is not None:
            idx, kind, marker = best
            self._emit_content(text[:idx].rstrip(_WS))
            self._cur.pos += idx
            if kind == "think":
                self._cur.pos += len(marker.text)
                self._state = _REASONING
                self._think_allowed = False
            else:
                self._start_section(marker)
            return True
        if self._cur.final:
            return False
        hold = 0
        for _, marker in markers:
            if marker.at_start:
                if marker.text.startswith(text.lstrip(_WS)):
                    hold = len(text)
            else:
                hold = max(hold, _partial_suffix(text, marker.text))
        end = len(text) - hold
        if self._format is not None:  # trailing spaces are dropped if a tool call follows
            while end > 0 and text[end - 1] in _WS:
                end -= 1
        if end > 0:
            self._emit_content(text[:end])
            self._cur.pos += end
        return False

    def _reasoning_step(self) -> bool:
        assert self._tags is not None
        text = self._cur.rest()
        close = self._tags.close
        idx = text.find(close)
        if idx >= 0:
            self._emit_reasoning(text[:idx], closing=True)
            self._cur.pos += idx + len(close)
            self._state = _CONTENT
            self._strip_lead = True
            self._think_allowed = False
            return True
        if self._cur.final:
            return False
        end = len(text) - _partial_suffix(text, close)
        while end > 0 and text[end - 1] in _WS:
            end -= 1
        if end > 0:
            self._emit_reasoning(text[:end], closing=False)
            self._cur.pos += end
        return False

    def _start_section(self, marker: Marker) -> None:
        assert self._format is not None
        self._section_marker = marker
        self._section_start = self._cur.pos
        self._section_mark = self._pushed
        self._section = self._format.parse(self._cur, self)
        self._state = _SECTION

    def _section_step(self) -> bool:
        assert self._section is not None
        try:
            next(self._section)
        except StopIteration:
            self._section = None
            self._state = _CONTENT
            self._open_call = None
            return True
        except Mismatch:
            self._abort_section(ended=False)
            return True
        except EndOfInput:
            self._abort_section(ended=True)
            return True
        return False

    def _abort_section(self, *, ended: bool) -> None:
        """The section was not (or not entirely) a tool call."""
        emitted = self._pushed > self._section_mark
        self._section = None
        self._state = _CONTENT
        if self._open_call is not None:
            self.incomplete_tool_call = ended
            self._open_call = None
        if emitted:
            if ended:  # a cut-off remainder after complete calls carries nothing
                self._cur.pos = len(self._cur.text)
            return
        assert self._section_marker is not None
        if ended:  # an unfinished "call" that never named its tool is plain text
            text = self._cur.text[self._section_start :]
            self._cur.pos = len(self._cur.text)
        else:
            text = self._section_marker.text
            self._cur.pos = self._section_start + len(text)
        self._emit_content(text)

    # --- output ---------------------------------------------------------------------------

    def _emit_content(self, text: str) -> None:
        if self._strip_lead:
            text = text.lstrip(_WS)
            if text:
                self._strip_lead = False
        if not text:
            return
        if text.strip(_WS):
            self._content_started = True
        self._push(TextDelta(text=text, choice=self._choice))

    def _emit_reasoning(self, text: str, *, closing: bool) -> None:
        if self._reasoning_fresh:
            text = text.lstrip(_WS)
            if text:
                self._reasoning_fresh = False
        if closing:
            text = text.rstrip(_WS)
        if text:
            self._push(ReasoningDelta(text=text, choice=self._choice))

    def _push(self, event: Event) -> None:
        self._pushed += 1
        last = self._out[-1] if self._out else None
        if isinstance(event, TextDelta) and isinstance(last, TextDelta):
            last.text += event.text
        elif isinstance(event, ReasoningDelta) and isinstance(last, ReasoningDelta):
            last.text += event.text
        elif (
            isinstance(event, ToolCallDelta)
            and isinstance(last, ToolCallDelta)
            and last.index == event.index
            and event.id is None
            and event.name is None
        ):
            last.arguments += event.arguments
        else:
            self._out.append(event)

    def _take(self) -> list[Event]:
        out, self._out = self._out, []
        return out


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest end of `text` that is a proper start of `marker`."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return k
    return 0
