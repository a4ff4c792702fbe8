"""Reading a built-in tool's arguments: a bad one is the caller's error (400), named by its param.

The model (or a client calling the tool) sends the arguments as a JSON object; the tool's
input schema says what they should be, but nothing has checked them against it yet.
"""

from __future__ import annotations

from typing import Any, overload

from kronk.errors import InvalidRequestError


def text_argument(arguments: dict[str, Any], name: str, tool: str) -> str:
    """A required string argument that is not blank (returned as sent, unstripped)."""
    value = arguments.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{tool} needs a `{name}` string", param=name)
    return value


@overload
def count_argument(arguments: dict[str, Any], name: str, tool: str, *, default: int,
                   most: int | None = None) -> int: ...
@overload
def count_argument(arguments: dict[str, Any], name: str, tool: str, *, default: None = None,
                   most: int | None = None) -> int | None: ...
def count_argument(arguments: dict[str, Any], name: str, tool: str, *, default: int | None = None,
                   most: int | None = None) -> int | None:
    """A whole number from 1 (to `most`); absent, `default`. Without a default, absent or null is None."""
    value = arguments.get(name, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (most is not None and value > most):
        bounds = "a positive integer" if most is None else f"1 to {most}"
        raise InvalidRequestError(f"{tool} `{name}` must be {bounds}", param=name)
    return value
