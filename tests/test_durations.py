"""The one duration grammar (kronk.durations): every spelling that either of the two
earlier parsers took (settings' `90`, `1.5h`, `5 m`; token lifetimes' `1h30m`, `7d`, `1y`)
still reads the same, and nothing else does."""

from __future__ import annotations

import pytest

from kronk.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # bare numbers are seconds (settings took these; token lifetimes took whole ones)
        ("90", 90), ("0", 0), ("1.5", 1.5), (" 300 ", 300), (90, 90), (0.001, 0.001),
        # one part (settings: s/m/h with a fraction and blanks; lifetimes: s/m/h/d/w/y, any case)
        ("30s", 30), ("5m", 300), ("1.5h", 5400), ("720h", 2_592_000), ("7d", 604_800), ("2w", 1_209_600),
        ("1y", 31_536_000), ("5 m", 300), ("2M", 120), ("24H", 86_400), ("0h", 0),
        # several parts, added
        ("1h30m", 5400), ("1d12h", 129_600), ("1h 30m", 5400), ("1w1d1h1m1s", 694_861), ("0.5m30s", 60),
    ],
)
def test_the_grammar(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["", " ", "h", "-1h", "+5m", "1e3", "1h30", "5 parsecs", "24h junk", "1..5h", ".5h", "1,5h", "٣h", "1 h x",
     "9" * 400, -1, float("inf"), float("nan"), True, None, [5], b"5m"],
)
def test_everything_else_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (1, "1s"), (90, "1m30s"), (86_400 + 3661, "1d1h1m1s"),
                                               (5400, "1h30m"), (1.5, "1.5s")])
def test_format_gives_the_shortest_spelling_and_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds
