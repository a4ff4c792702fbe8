"""A streaming reader for the header of a GGUF file: metadata and tensor shapes only.

`gguf.GGUFReader` parses every array element into its own numpy view, which takes
10-20 s for a 262k-token vocabulary; the store only needs scalars, the chat template,
a few candidate token texts and the tensor sizes. This reader walks the header once
over an mmap, keeps scalars, strings and short arrays, and skips long arrays (it only
looks for wanted strings in them), so reading any model's facts takes milliseconds.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAGIC = b"GGUF"
SHORT_ARRAY = 64
"""Arrays up to this many elements are kept as lists; longer ones are skipped."""

_STRING, _ARRAY = 8, 9
_SCALARS: dict[int, struct.Struct] = {
    0: struct.Struct("<B"), 1: struct.Struct("<b"), 2: struct.Struct("<H"), 3: struct.Struct("<h"),
    4: struct.Struct("<I"), 5: struct.Struct("<i"), 6: struct.Struct("<f"), 7: struct.Struct("<?"),
    10: struct.Struct("<Q"), 11: struct.Struct("<q"), 12: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class GGUFFormatError(ValueError):
    """The file is not a GGUF file this reader understands."""


@dataclass(frozen=True, slots=True)
class LongArray:
    """Stands in for an array too long to keep: its element type and length."""

    element_type: int
    length: int


@dataclass(slots=True)
class GGUFHeader:
    version: int
    metadata: dict[str, Any]
    tensor_elements: list[int]
    found_strings: dict[str, set[bytes]] = field(default_factory=dict)
    """For each array key asked about: which of the wanted strings it holds."""

    @property
    def parameters(self) -> int:
        return sum(self.tensor_elements)


class _Cursor:
    __slots__ = ("buf", "pos", "size")

    def __init__(self, buf: Any) -> None:
        self.buf = buf
        self.pos = 0
        self.size = len(buf)

    def unpack(self, shape: struct.Struct) -> Any:
        if self.pos + shape.size > self.size:
            raise GGUFFormatError("the header runs past the end of the file")
        (value,) = shape.unpack_from(self.buf, self.pos)
        self.pos += shape.size
        return value

    def raw_string(self) -> bytes:
        length = self.unpack(_U64)
        end = self.pos + length
        if end > self.size:
            raise GGUFFormatError("a string runs past the end of the file")
        value = self.buf[self.pos:end]
        self.pos = end
        return bytes(value)

    def string(self) -> str:
        return self.raw_string().decode("utf-8", errors="replace")

    def skip_strings(self, count: int, wanted: set[bytes] | None) -> set[bytes]:
        found: set[bytes] = set()
        lengths = {len(w) for w in wanted} if wanted else set()
        buf, pos, size, u64 = self.buf, self.pos, self.size, _U64
        for _ in range(count):
            if pos + 8 > size:
                raise GGUFFormatError("a string array runs past the end of the file")
            (length,) = u64.unpack_from(buf, pos)
            pos += 8
            if length in lengths:
                text = bytes(buf[pos:pos + length])
                if text in wanted:  # type: ignore[operator]
                    found.add(text)
            pos += length
        if pos > size:
            raise GGUFFormatError("a string array runs past the end of the file")
        self.pos = pos
        return found

    def value(self, kind: int, key: str, wanted: dict[str, set[bytes]], found: dict[str, set[bytes]]) -> Any:
        if kind == _STRING:
            return self.string()
        shape = _SCALARS.get(kind)
        if shape is not None:
            return self.unpack(shape)
        if kind != _ARRAY:
            raise GGUFFormatError(f"unknown metadata type {kind} for {key!r}")
        element = self.unpack(_U32)
        count = self.unpack(_U64)
        if count <= SHORT_ARRAY:
            return [self.value(element, key, wanted, found) for _ in range(count)]
        if element == _STRING:
            found[key] = self.skip_strings(count, wanted.get(key))
        elif element in _SCALARS:
            end = self.pos + _SCALARS[element].size * count
            if end > self.size:
                raise GGUFFormatError(f"array {key!r} runs past the end of the file")
            self.pos = end
        else:
            for _ in range(count):
                self.value(element, key, wanted, found)
        return LongArray(element, count)


def read_header(path: Path, wanted_strings: dict[str, Iterable[bytes]] | None = None) -> GGUFHeader:
    """Read a GGUF file's metadata and tensor sizes. Raises GGUFFormatError or OSError."""
    wanted = {key: set(values) for key, values in (wanted_strings or {}).items()}
    with open(path, "rb") as file:
        if file.read(4) != MAGIC:
            raise GGUFFormatError("no GGUF magic at the start of the file")
        file.seek(0)
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            cursor = _Cursor(memoryview(buf))
            try:
                return _parse(cursor, wanted)
            finally:
                cursor.buf.release()


def _parse(cursor: _Cursor, wanted: dict[str, set[bytes]]) -> GGUFHeader:
    cursor.pos = 4
    version = cursor.unpack(_U32)
    if version not in (2, 3):
        raise GGUFFormatError(f"GGUF version {version} is not supported (2 and 3 are)")
    n_tensors = cursor.unpack(_U64)
    n_kv = cursor.unpack(_U64)
    if n_tensors > 10_000_000 or n_kv > 10_000_000:
        raise GGUFFormatError("implausible tensor or metadata counts")
    metadata: dict[str, Any] = {}
    found: dict[str, set[bytes]] = {}
    for _ in range(n_kv):
        key = cursor.string()
        kind = cursor.unpack(_U32)
        metadata[key] = cursor.value(kind, key, wanted, found)
    elements: list[int] = []
    for _ in range(n_tensors):
        cursor.raw_string()
        n_dims = cursor.unpack(_U32)
        if n_dims > 8:
            raise GGUFFormatError(f"a tensor has {n_dims} dimensions")
        count = 1
        for _ in range(n_dims):
            count *= cursor.unpack(_U64)
        cursor.unpack(_U32)  # ggml type
        cursor.unpack(_U64)  # data offset
        elements.append(count)
    return GGUFHeader(version, metadata, elements, found)
