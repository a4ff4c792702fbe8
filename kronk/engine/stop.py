"""Stop strings: text that could still become a stop string is held back, never emitted."""

from __future__ import annotations


class StopMatcher:
    """Feed decoded text; get back what is safe to emit and whether a stop string matched.

    Text is held while it is a prefix of some stop string, so a stop string is never
    emitted, not even in part; held text that stops matching is released.
    """

    __slots__ = ("stops", "_held", "_max_len", "matched")

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._held = ""
        self.matched: str | None = None
        """The stop string that ended the text, once one has."""
        self._max_len = max((len(s) for s in self.stops), default=0)

    def push(self, text: str) -> tuple[str, bool]:
        """Returns (text to emit, stopped). After a stop, the rest is dropped."""
        if not self.stops:
            return text, False
        buffer = self._held + text
        cut = -1
        for stop in self.stops:
            index = buffer.find(stop)
            if index != -1 and (cut == -1 or index < cut):
                cut = index
                self.matched = stop
        if cut != -1:
            self._held = ""
            return buffer[:cut], True
        hold = self._partial_suffix(buffer)
        self._held = buffer[len(buffer) - hold :] if hold else ""
        return buffer[: len(buffer) - hold], False

    def flush(self) -> str:
        """Release held text at the end of generation (it never became a stop string)."""
        held, self._held = self._held, ""
        return held

    def _partial_suffix(self, buffer: str) -> int:
        """Length of the longest suffix of `buffer` that is a proper prefix of a stop string."""
        longest = min(len(buffer), self._max_len - 1)
        for length in range(longest, 0, -1):
            tail = buffer[-length:]
            if any(stop.startswith(tail) for stop in self.stops):
                return length
        return 0
