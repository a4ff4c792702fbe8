"""Fixtures for the chat layer: real template texts, a loaded tiny model, a greedy loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def smollm2_template(smollm2: Path) -> str:
    """SmolLM2's own chat template, read from its GGUF metadata."""
    from gguf import GGUFReader

    reader = GGUFReader(smollm2)
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


@pytest.fixture(scope="session")
def tiny_chat_model(lib_dir: Path, tiny: dict[str, Path]) -> Iterator[Any]:
    """The tiny random ChatML model, loaded once through the real binding."""
    from kronk.llama import Model

    model = Model.load(tiny["chat"])
    yield model
    model.close()
