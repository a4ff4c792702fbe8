"""The one duration grammar of Kronk: settings (`--model-ttl`, `--keepalive`), token
lifetimes (`--duration`, `KRONK_TOKEN_DURATION`, the tokens API) all parse with it.

    duration := number                  a bare number is seconds: 90, 1.5
              | (number unit)+          one or more parts, added: 30s, 5m, 1.5h, 720h, 1h30m, 7d
    number   := digits [ "." digits ]
    unit     := s | m | h | d | w | y   second, minute, hour, day, week, year (= 365 days)

Units are case-insensitive; blanks may stand around and between the parts ("5 m",
"1h 30m"). Python ints and floats are seconds too (a YAML config's `model_ttl: 300`).
Signs, exponents, unknown units and non-finite values are refused. Callers add their
own bounds (a token lives at least a second); this module only reads the text.
"""

from __future__ import annotations

import math
import re

UNIT_SECONDS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
EXAMPLES = "90, 30s, 5m, 1.5h, 720h, 1h30m, 7d or 1y"

_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_UNIT = "[smhdwySMHDWY]"
_BARE = re.compile(rf"\s*({_NUMBER})\s*")
_PARTS = re.compile(rf"\s*(?:{_NUMBER}\s*{_UNIT}\s*)+")
_PART = re.compile(rf"({_NUMBER})\s*({_UNIT})")


def parse_duration(value: object) -> float:
    """Seconds (0 or more) from a number or a text in the grammar above; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use e.g. {EXAMPLES}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (bare := _BARE.fullmatch(value)):
        seconds = float(bare.group(1))
    elif isinstance(value, str) and _PARTS.fullmatch(value):
        seconds = sum(float(number) * UNIT_SECONDS[unit.lower()] for number, unit in _PART.findall(value))
    else:
        raise ValueError(f"invalid duration {value!r}: use e.g. {EXAMPLES}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: it must be a finite number of seconds, 0 or more")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest spelling of `seconds` in the grammar, in d/h/m/s parts (e.g. "1d12h")."""
    if seconds <= 0:
        return "0s"
    whole, fraction = divmod(seconds, 1)
    rest = int(whole)
    parts: list[str] = []
    for unit in ("d", "h", "m"):
        count, rest = divmod(rest, UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    if rest or fraction:
        parts.append(f"{rest + fraction:g}s")
    return "".join(parts)
