"""An incremental reader for model output that arrives in pieces.

Tool-call formats are parsed by generator functions that `yield` whenever they need
more text, so one format parser reads like a plain recursive-descent parser and still
works on a stream: the driver appends text to the `Cursor` and resumes the generator.
Every helper here is such a generator (`yield from cur.expect("<tool_call>")`).

Two exceptions steer the driver: `Mismatch` (the text does not follow the format; the
driver falls back to plain text) and `EndOfInput` (the output ended mid-structure).
Helpers never consume text when they raise `Mismatch`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator
from typing import TypeVar

T = TypeVar("T")
Step = Generator[None, None, T]

_WS = " \t\r\n"
_STRUCT = re.compile(r'["{}\[\]]')
_STRING_SPECIAL = re.compile(r'["\\]')
_SCALAR = re.compile(r"[-+.0-9a-zA-Z]*")


class Mismatch(Exception):
    """The output does not follow the expected format at this point."""


class EndOfInput(Exception):
    """The output ended before the structure being read was complete."""


class Cursor:
    """Text received so far, the read position, and whether more can come."""

    def __init__(self) -> None:
        self.text = ""
        self.pos = 0
        self.final = False

    def push(self, text: str) -> None:
        self.text += text

    def compact(self) -> None:
        """Drop consumed text. Only between structures: parsers keep offsets into `text`."""
        if self.pos > 4096 and self.pos > len(self.text) // 2:
            self.text = self.text[self.pos :]
            self.pos = 0

    @property
    def available(self) -> int:
        return len(self.text) - self.pos

    def rest(self) -> str:
        return self.text[self.pos :]

    # --- waiting ----------------------------------------------------------------

    def wait(self, n: int) -> Step[bool]:
        """Until `n` characters are available; False if the output ended first."""
        while self.available < n:
            if self.final:
                return False
            yield
        return True

    def need(self, n: int) -> Step[None]:
        if not (yield from self.wait(n)):
            raise EndOfInput

    def wait_end(self) -> Step[str]:
        """Everything up to the end of the output (for formats that run to EOS)."""
        while not self.final:
            yield
        text = self.rest()
        self.pos = len(self.text)
        return text

    # --- literals and whitespace -------------------------------------------------

    def starts_with(self, literal: str) -> Step[bool]:
        """Whether the next text is `literal`, waiting only as long as needed."""
        while True:
            have = self.text[self.pos : self.pos + len(literal)]
            if not literal.startswith(have):
                return False
            if len(have) == len(literal):
                return True
            if self.final:
                return False
            yield

    def lit(self, literal: str) -> Step[bool]:
        """Consume `literal` if it comes next."""
        if (yield from self.starts_with(literal)):
            self.pos += len(literal)
            return True
        return False

    def expect(self, literal: str) -> Step[None]:
        """Consume `literal` or fail (`EndOfInput` if the output stopped inside it)."""
        if not (yield from self.lit(literal)):
            if self.final and literal.startswith(self.rest()):
                raise EndOfInput
            raise Mismatch(f"expected {literal!r}")

    def skip_ws(self) -> Step[None]:
        """Skip whitespace, waiting until a non-space character (or the end) is seen."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.text) or self.final:
                return
            yield

    def until(self, stops: tuple[str, ...], *, limit: int) -> Step[tuple[str, str]]:
        """Text before the first of `stops` and that stop (consumed); `Mismatch` past `limit` characters."""
        while True:
            rest = self.rest()
            found = [(rest.find(s), s) for s in stops if s in rest]
            if found:
                idx, stop = min(found)
                if idx > limit:
                    raise Mismatch("delimiter too far")
                self.pos += idx + len(stop)
                return rest[:idx], stop
            if len(rest) > limit + max(len(s) for s in stops):
                raise Mismatch("delimiter too far")
            if self.final:
                raise EndOfInput
            yield

    # --- JSON ----------------------------------------------------------------------

    def json_value(self, on_chunk: Callable[[str], None] | None = None) -> Step[str]:
        """The raw text of one JSON value; `on_chunk` receives it piece by piece as it arrives.

        Only nesting and strings are tracked (enough to find the end): callers that
        need a checked value `json.loads` the result.
        """
        yield from self.need(1)
        start = emitted = self.pos
        first = self.text[start]

        def flush() -> None:
            nonlocal emitted
            if on_chunk is not None and self.pos > emitted:
                on_chunk(self.text[emitted : self.pos])
            emitted = self.pos

        if first not in '{["':
            while True:
                match = _SCALAR.match(self.text, self.pos)
                assert match is not None
                self.pos = match.end()
                if self.pos < len(self.text) or self.final:
                    break
                yield
            if self.pos == start:
                raise Mismatch("expected a JSON value")
            flush()
            return self.text[start : self.pos]
        depth = 0
        in_string = False
        while True:
            if self.pos >= len(self.text):
                flush()
                if self.final:
                    raise EndOfInput
                yield
                continue
            if in_string:
                match = _STRING_SPECIAL.search(self.text, self.pos)
                if match is None:
                    self.pos = len(self.text)
                    continue
                if match.group() == "\\":
                    if match.start() + 1 >= len(self.text):
                        self.pos = match.start()
                        flush()
                        if self.final:
                            raise EndOfInput
                        yield
                        continue
                    self.pos = match.start() + 2
                    continue
                self.pos = match.end()
                in_string = False
                if depth == 0:
                    flush()
                    return self.text[start : self.pos]
                continue
            match = _STRUCT.search(self.text, self.pos)
            if match is None:
                self.pos = len(self.text)
                continue
            self.pos = match.end()
            ch = match.group()
            if ch == '"':
                in_string = True
            elif ch in "{[":
                depth += 1
            else:
                depth -= 1
                if depth <= 0:
                    flush()
                    return self.text[start : self.pos]

    def json_string(self) -> Step[str]:
        """One complete JSON string, decoded."""
        yield from self.need(1)
        if self.text[self.pos] != '"':
            raise Mismatch("expected a JSON string")
        raw = yield from self.json_value()
        try:
            value = json.loads(raw)
        except ValueError:
            raise Mismatch("malformed JSON string") from None
        return value

    def json_string_stream(self, on_text: Callable[[str], None]) -> Step[None]:
        """A JSON string whose decoded text goes to `on_text` as it arrives."""
        yield from self.need(1)
        if self.text[self.pos] != '"':
            raise Mismatch("expected a JSON string")
        self.pos += 1
        while True:
            yield from self.need(1)
            match = _STRING_SPECIAL.search(self.text, self.pos)
            end = match.start() if match else len(self.text)
            if end > self.pos:
                on_text(self.text[self.pos : end])
                self.pos = end
            if match is None:
                continue
            if match.group() == '"':
                self.pos += 1
                return
            yield from self.need(2)
            width = 6 if self.text[self.pos + 1] == "u" else 2
            yield from self.need(width)
            escape = self.text[self.pos : self.pos + width]
            if width == 6 and 0xD800 <= _hex(escape[2:]) <= 0xDBFF:
                yield from self.need(12)
                escape = self.text[self.pos : self.pos + 12]
            try:
                decoded = json.loads(f'"{escape}"')
            except ValueError:
                raise Mismatch("malformed JSON escape") from None
            self.pos += len(escape)
            on_text(decoded)


def _hex(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError:
        return -1
