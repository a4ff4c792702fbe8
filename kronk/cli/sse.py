"""Server-sent events as the CLI reads them, whatever HTTP client carries the lines.

The CLI reads SSE over `requests` (management progress, blocking) and over aiohttp
(`kronk chat`, async). SSE libraries each come tied to one HTTP client, so the one
decoder here is fed lines by both: `event:`/`data:` fields, comments, multi-line
data, a blank line ending each event, and JSON data decoded where it parses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ServerEvent:
    name: str
    data: Any
    """The data decoded as JSON where it parses (`[DONE]` and plain text stay strings)."""


@dataclass(slots=True)
class SSEDecoder:
    """Feed it lines (without their line ending); it returns each event a blank line completes."""

    _name: str = "message"
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> ServerEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            self._name = value.strip()
        elif key == "data":
            self._data.append(value)
        return None

    def flush(self) -> ServerEvent | None:
        """The pending event, if any (also at the end of the stream, without a final blank line)."""
        event = ServerEvent(self._name, _decode("\n".join(self._data))) if self._data else None
        self._name, self._data = "message", []
        return event


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
