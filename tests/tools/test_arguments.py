"""The built-in tools' argument readers: each bad argument is a 400 naming its param."""

from __future__ import annotations

from typing import Any

import pytest

from kronk.errors import InvalidRequestError
from kronk.tools.arguments import count_argument, text_argument


def test_text_argument_is_returned_as_sent() -> None:
    assert text_argument({"query": "  cats "}, "query", "web_search") == "  cats "


@pytest.mark.parametrize("arguments", [{}, {"url": None}, {"url": "  "}, {"url": 3}, {"url": ["x"]}])
def test_a_missing_or_blank_text_argument_is_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        text_argument(arguments, "url", "web_fetch")
    assert str(caught.value) == "web_fetch needs a `url` string"
    assert caught.value.param == "url"


def test_count_argument_defaults() -> None:
    assert count_argument({}, "count", "web_search", default=5, most=20) == 5
    assert count_argument({"count": 20}, "count", "web_search", default=5, most=20) == 20
    assert count_argument({}, "max_length", "web_fetch") is None
    assert count_argument({"max_length": None}, "max_length", "web_fetch") is None
    assert count_argument({"max_length": 10**9}, "max_length", "web_fetch") == 10**9


@pytest.mark.parametrize("value", [None, 0, 21, True, 2.0, "3"])
def test_a_count_out_of_range_names_the_range(value: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        count_argument({"count": value}, "count", "web_search", default=5, most=20)
    assert str(caught.value) == "web_search `count` must be 1 to 20"
    assert caught.value.param == "count"


@pytest.mark.parametrize("value", [0, -1, False, 1.5, "10"])
def test_an_unbounded_count_must_be_positive(value: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        count_argument({"max_length": value}, "max_length", "web_fetch")
    assert str(caught.value) == "web_fetch `max_length` must be a positive integer"
    assert caught.value.param == "max_length"
