"""Human durations ("24h", "1h30m", "90d") for token lifetimes, parsed strictly."""

from __future__ import annotations

import re
from datetime import timedelta

from kronk.errors import ConfigError

_UNIT_SECONDS: dict[str, int] = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_PART = re.compile(r"(\d+)([smhdwy])")
_WHOLE = re.compile(r"(?:\d+[smhdwy])+")
MAX_DURATION = timedelta(days=100 * 365)


def parse_duration(text: str) -> timedelta:
    """Parse `<number><unit>` parts (s, m, h, d, w, y=365d), e.g. "24h" or "1d12h".

    A bare number means seconds. Zero, negative or absurd (>100y) lifetimes are refused.
    """
    value = text.strip().lower()
    if value.isdigit():
        seconds = int(value)
    elif _WHOLE.fullmatch(value):
        seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(value))
    else:
        raise ConfigError(f"invalid duration {text!r}: use e.g. 90s, 30m, 24h, 7d, 1y or 1h30m")
    duration = timedelta(seconds=seconds)
    if seconds <= 0:
        raise ConfigError(f"duration {text!r} must be positive")
    if duration > MAX_DURATION:
        raise ConfigError(f"duration {text!r} is longer than 100 years")
    return duration


def format_duration(duration: timedelta) -> str:
    """The shortest `parse_duration` spelling of a whole-second duration (e.g. "1d12h")."""
    seconds = int(duration.total_seconds())
    if seconds <= 0:
        return "0s"
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
