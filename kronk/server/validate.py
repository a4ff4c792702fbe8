"""Typed reads of JSON request fields; every failure names the offending field.

Each API's protocol module reads its body through `Body`, so a wrong type, a value
out of range or a missing field becomes `InvalidRequestError(param=<dotted path>)`
(HTTP 400 with `param`), never a KeyError deep inside a handler.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from kronk.errors import InvalidRequestError
from kronk.wire import read_json

__all__ = ["Body", "read_json"]

_MISSING: Any = object()


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


class Body:
    """A JSON object with typed, range-checked accessors.

    `path` is the dotted location of this object in the request (`""` for the
    root), so nested errors read `stream_options.include_usage`.
    """

    __slots__ = ("data", "path")

    def __init__(self, data: object, path: str = "") -> None:
        if not isinstance(data, dict):
            where = path or "request body"
            raise InvalidRequestError(f"{where} must be a JSON object, got {_type_name(data)}", param=path or None)
        self.data: dict[str, Any] = data
        self.path = path

    def param(self, name: str | int) -> str:
        if isinstance(name, int):
            return f"{self.path}[{name}]"
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> InvalidRequestError:
        param = self.param(name)
        return InvalidRequestError(f"{param}: {message}", param=param)

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def raw(self, name: str, default: Any = None) -> Any:
        value = self.data.get(name)
        return default if value is None else value

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name)
        if value is None and required:
            raise self.error(name, "is required")
        return _MISSING if value is None else value

    def _typed(self, name: str, required: bool, kind: type, label: str, nonempty: bool = False) -> Any:
        """The field (or _MISSING when absent) after checking it is a `kind`, non-empty if asked."""
        value = self._get(name, required)
        if value is _MISSING:
            return value
        if not isinstance(value, kind):
            raise self.error(name, f"must be {label}, got {_type_name(value)}")
        if nonempty and not value:
            raise self.error(name, "must not be empty")
        return value

    def string(self, name: str, *, required: bool = False, default: Any = None,
            choices: tuple[str, ...] | None = None, nonempty: bool = False) -> Any:
        value = self._typed(name, required, str, "a string", nonempty)
        if value is _MISSING:
            return default
        if choices is not None and value not in choices:
            raise self.error(name, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return value

    def boolean(self, name: str, *, default: Any = None) -> Any:
        value = self._typed(name, False, bool, "a boolean")
        return default if value is _MISSING else value

    def integer(self, name: str, *, required: bool = False, default: Any = None,
            min: int | None = None, max: int | None = None) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, got {_type_name(value)}")
        _check_range(self, name, value, min, max)
        return value

    def number(self, name: str, *, default: Any = None, min: float | None = None, max: float | None = None) -> Any:
        value = self._get(name, False)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, f"must be a number, got {_type_name(value)}")
        if not math.isfinite(value):
            raise self.error(name, "must be a finite number")
        _check_range(self, name, value, min, max)
        return float(value)

    def array(self, name: str, *, required: bool = False, nonempty: bool = False) -> list[Any] | None:
        value = self._typed(name, required, list, "an array", nonempty)
        return None if value is _MISSING else value

    def child(self, name: str, *, required: bool = False) -> Body | None:
        value = self._get(name, required)
        if value is _MISSING:
            return None
        return Body(value, self.param(name))

    def mapping(self, name: str) -> dict[str, Any] | None:
        body = self.child(name)
        return None if body is None else body.data

    def items(self, name: str, *, required: bool = False, nonempty: bool = False) -> Iterator[tuple[int, Any]]:
        values = self.array(name, required=required, nonempty=nonempty) or []
        return iter(enumerate(values))

    def children(self, name: str, *, required: bool = False, nonempty: bool = False) -> list[Body]:
        """Each element of an array of objects, as a Body with an indexed path."""
        values = self.array(name, required=required, nonempty=nonempty) or []
        base = self.param(name)
        return [Body(item, f"{base}[{i}]") for i, item in enumerate(values)]

    def strings(self, name: str, *, max_items: int | None = None) -> list[str]:
        """A string or an array of strings (like `stop`), as a list."""
        value = self.data.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value] if value else []
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            if max_items is not None and len(value) > max_items:
                raise self.error(name, f"at most {max_items} entries are allowed")
            return [v for v in value if v]
        raise self.error(name, "must be a string or an array of strings")


def _check_range(body: Body, name: str, value: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and value < lo:
        raise body.error(name, f"must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise body.error(name, f"must be <= {hi}, got {value}")
