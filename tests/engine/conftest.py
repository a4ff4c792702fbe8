"""Engine fixtures: engines over the tiny chat model and SmolLM2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kronk.engine import speculation
from kronk.engine.jobs import ThreadEventQueue
from kronk.engine.loop import Engine, EngineConfig
from kronk.engine.speculation import StepCost
from kronk.engine.types import Finish, GenerateRequest, SamplingParams, SpecSettings, TextDelta
from kronk.llama import Model
from kronk.llama.context import ContextParams


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


def make_engine(model: Model, n_ctx: int = 2048, slots: int = 4, spec_type: str = "off", spec_draft_max: int = 16,
                spec_draft_min: int = 1, **config: object) -> Engine:
    """An engine on two threads; the other keywords are EngineConfig's."""
    context = ContextParams(n_ctx=n_ctx, n_seq_max=slots, n_threads=2)
    speculation = SpecSettings(spec_type, spec_draft_max, spec_draft_min)
    return Engine(model, EngineConfig(context=context, speculation=speculation, **config))  # type: ignore[arg-type]


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


@pytest.fixture
def cheap_drafts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Price draft rows (and draft-model steps) at a few percent of a step, as on a GPU, so the
    engine verifies drafts at every step whatever their acceptance: tests of the verification's
    mechanics then do not depend on this CPU's measured cost (which would rightly stop drafts
    that do not pay)."""
    monkeypatch.setattr(StepCost, "record", lambda self, rows, seconds: None)
    monkeypatch.setattr(StepCost, "draft_ratio", lambda self: 0.02)
    monkeypatch.setattr(speculation, "ROW_COST_PRIOR", 0.01)
