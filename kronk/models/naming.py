"""Model ids, aliases and GGUF file names: the rules in one place.

An id is `provider/name` (e.g. `HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1`); its
files live in `models/<provider>/<name>/`. A split GGUF is named
`<stem>-00001-of-00003.gguf`; its shards form one model whose id ends in `<stem>`.
"""

from __future__ import annotations

import re

from kronk.errors import InvalidRequestError

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def split_info(filename: str) -> tuple[str, int, int] | None:
    """(stem, shard number, shard count) of a split-GGUF shard name, else None."""
    match = _SPLIT.match(filename)
    if match is None:
        return None
    number, count = int(match.group("no")), int(match.group("count"))
    if count < 1 or not 1 <= number <= count:
        return None
    return match.group("stem"), number, count


def shard_names(filename: str) -> list[str]:
    """Every shard of the split GGUF `filename` belongs to (or just `filename`)."""
    info = split_info(filename)
    if info is None:
        return [filename]
    stem, _, count = info
    return [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def model_stem(filename: str) -> str:
    """The file name without directory, split suffix and `.gguf` extension."""
    name = filename.rsplit("/", 1)[-1]
    info = split_info(name)
    if info is not None:
        return info[0]
    return name[:-5] if name.lower().endswith(".gguf") else name


def is_projector_name(filename: str) -> bool:
    """Multimodal projectors are published as `mmproj-*.gguf` (or with `mmproj` in the name)."""
    return "mmproj" in filename.rsplit("/", 1)[-1].lower()


def safe_segment(text: str) -> str:
    """Turn any text (a host name, a package name) into a valid id segment."""
    cleaned = _UNSAFE.sub("-", text).strip("-._+")
    return cleaned[:128] or "model"


def validate_model_id(model_id: str) -> tuple[str, str]:
    """Split `provider/name`, rejecting anything that could escape the models folder."""
    parts = model_id.split("/")
    if len(parts) != 2 or not all(_SEGMENT.match(p) for p in parts) or ".." in model_id:
        raise InvalidRequestError(
            f"invalid model id {model_id!r}: expected provider/name made of letters, digits and . _ + -",
            param="model",
        )
    return parts[0], parts[1]


def default_alias(model_id: str) -> str:
    """The short name a model answers to when the catalog gives none: its name, lowercased."""
    return model_id.rsplit("/", 1)[-1].lower()
