"""Token lifetimes: a duration in Kronk's one grammar (`kronk.durations`), from one
second to 100 years, as a ConfigError when it is not (the API maps it to a 400)."""

from __future__ import annotations

from datetime import timedelta

from kronk.durations import parse_duration
from kronk.errors import ConfigError

MAX_LIFETIME = timedelta(days=100 * 365)


def parse_lifetime(value: str | int) -> timedelta:
    """A token lifetime from `--duration`, KRONK_TOKEN_DURATION or the tokens API, e.g. "24h"."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if seconds < 1:
        raise ConfigError(f"duration {value!r} must be at least one second")
    if seconds > MAX_LIFETIME.total_seconds():
        raise ConfigError(f"duration {value!r} is longer than 100 years")
    return timedelta(seconds=seconds)
