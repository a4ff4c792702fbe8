"""Size caps on tool output, applied before the text goes anywhere (prompt, response, log)."""

from __future__ import annotations

TRUNCATION_NOTE = "\n\n[output truncated: first {kept} of {total} characters shown]"


def cap_text(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to at most `limit` characters (a note saying so included); True when it was cut."""
    if limit <= 0 or len(text) <= limit:
        return text, False
    keep = max(0, limit - len(TRUNCATION_NOTE.format(kept=limit, total=len(text))))
    note = TRUNCATION_NOTE.format(kept=keep, total=len(text))
    return (text[:keep] + note)[:limit], True
