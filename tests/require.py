"""Skips for missing test resources, and the switch that turns them into failures.

Some tests need what `scripts/setup.sh` provides: the built llama.cpp libraries and tools,
the real models, the pinned sdist, redis-server, nginx, cmake and a C compiler. Where one is
missing they skip, so a bare checkout still runs everything else. With
`KRONK_TEST_REQUIRE=all` (CI sets it) they fail instead, with the same reason, so a green
run means the whole suite ran; `KRONK_TEST_REQUIRE=libs,models` requires only those kinds.

Every such skip goes through `missing()`; the value is read once, at import, because the
tests' own fixtures clear KRONK_* variables.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

ENV = "KRONK_TEST_REQUIRE"
KINDS = ("libs", "tools", "models", "sdist", "redis", "toolchain", "nginx", "browser")


def parse(value: str | None) -> frozenset[str]:
    """`all` -> every kind; `libs,models` -> those; empty -> none. ValueError for unknown kinds."""
    words = {word.strip().lower() for word in (value or "").split(",") if word.strip()}
    if "all" in words:
        return frozenset(KINDS)
    unknown = sorted(words - set(KINDS))
    if unknown:
        raise ValueError(f"{ENV}={value!r}: unknown {', '.join(unknown)} (expected all or some of {', '.join(KINDS)})")
    return frozenset(words)


def required() -> frozenset[str]:
    """The kinds this run requires (parsed from the environment at import)."""
    return _REQUIRED


def missing(kind: str, reason: str) -> NoReturn:
    """Skip the test because a `kind` resource is absent, or fail it when that kind is required."""
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}")
    if kind in _REQUIRED:
        pytest.fail(f"{reason} [{ENV} requires {kind}]", pytrace=False)
    pytest.skip(reason)


try:
    _REQUIRED = parse(os.environ.get(ENV))
except ValueError:
    _REQUIRED = frozenset(KINDS)  # conftest's pytest_configure reports the bad value as a usage error
