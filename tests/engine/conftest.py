"""Engine fixtures: engines over the tiny chat model and SmolLM2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kronk.engine.jobs import ThreadEventQueue
from kronk.engine.loop import Engine, EngineConfig
from kronk.engine.types import Finish, GenerateRequest, SamplingParams, TextDelta
from kronk.llama import Model


@pytest.fixture(scope="module")
def tiny_model(lib_dir: Path, tiny: dict[str, Path]) -> Iterator[Model]:
    model = Model.load(tiny["chat"])
    yield model
    model.close()


@pytest.fixture(scope="module")
def smol_model(lib_dir: Path, smollm2: Path) -> Iterator[Model]:
    model = Model.load(smollm2)
    yield model
    model.close()


def make_engine(model: Model, **config: object) -> Engine:
    defaults: dict[str, object] = {"n_ctx": 2048, "slots": 4, "threads": 2}
    defaults.update(config)
    return Engine(model, EngineConfig(**defaults))  # type: ignore[arg-type]


def greedy_request(model: Model, prompt: str, n: int = 32, **kwargs: object) -> GenerateRequest:
    sampling = kwargs.pop("sampling", SamplingParams(temperature=0))
    return GenerateRequest(model.vocab.tokenize(prompt), sampling=sampling, max_tokens=n, **kwargs)  # type: ignore[arg-type]


def collect(engine: Engine, request: GenerateRequest, timeout: float = 120) -> tuple[list[TextDelta], Finish]:
    sink = ThreadEventQueue()
    engine.submit(request, sink)
    deltas: list[TextDelta] = []
    while True:
        item = sink.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Finish):
            return deltas, item
        deltas.append(item)
