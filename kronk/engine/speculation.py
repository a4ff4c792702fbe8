"""Speculative decoding policy: how many draft tokens a slot proposes this step, and when it stops.

Verification is exact for every request, greedy or sampled: the draft rows are decoded
with the slot's next token, then the request's own sampler chain samples row after row
in C, as it would without speculation, and the draft is accepted while the sample equals
it. For a deterministic proposal (an n-gram match, a greedy draft model) this *is*
rejection sampling: the draft d survives with probability p(d) and, when it does not,
the token taken is a sample of p conditioned on "not d", i.e. p with d removed and
renormalised. The output distribution is p at every position, penalties, grammars and
mirostat advance token by token exactly as without speculation, and a seeded request
draws the same random numbers in the same order.

Drafts cost decode rows, so each slot adapts: its draft length follows what was accepted
last time (doubling after a full accept), and a slot whose acceptance stays too low to
pay stops drafting for a while (a cool-down that doubles each time), so free-form chat
is not slowed by verification it does not profit from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kronk.engine.types import SpecSettings
from kronk.errors import ConfigError, InvalidRequestError

if TYPE_CHECKING:
    from kronk.engine.types import Speculation

SPEC_TYPES = ("off", "ngram", "draft")
DRAFT_MAX_LIMIT = 64
"""The most draft tokens a request may ask for in one step."""

MIN_RATE = 0.55
"""Acceptance (accepted / drafted) below which drafting is paused: on a CPU each draft row costs
about half a 1-token decode, so a lower rate loses time (free chat measured 0.53: 0.965x)."""
WINDOW = 16
"""Drafted tokens observed before the acceptance is judged (and the weight of history)."""
START_LENGTH = 4
"""A slot's first draft length."""
COOLDOWN_FIRST = 16
COOLDOWN_MAX = 512
"""Steps a slot waits before drafting again after a pause, doubling from the first to the max."""


@dataclass(slots=True)
class SpecConfig(SpecSettings):
    """A model's checked speculation defaults (EngineConfig.speculation), which a request may override."""

    has_draft_model: bool = False


class SlotSpec:
    """One request's speculation state: its adaptive draft length and its acceptance."""

    __slots__ = ("kind", "draft_max", "draft_min", "length", "drafted", "accepted", "cooldown", "pause", "draft")

    def __init__(self, draft_max: int, draft_min: int, kind: str = "ngram") -> None:
        self.kind = kind
        """ngram (prompt lookup) or draft (the draft model)."""
        self.draft_max = draft_max
        self.draft_min = max(1, min(draft_min, draft_max))
        self.length = min(draft_max, START_LENGTH)
        """Draft tokens proposed at most this step (adapted: it starts short and doubles while
        drafts are accepted whole, so text that is not repeated wastes few rows)."""
        self.drafted = 0.0
        self.accepted = 0.0
        """Decayed counts since the last judgement (the acceptance observed)."""
        self.cooldown = 0
        """Steps left without drafting."""
        self.pause = COOLDOWN_FIRST
        self.draft = None
        """The tokens being verified in the current decode (a numpy view), or None."""

    def budget(self) -> int:
        """Draft tokens to propose this step (0: none)."""
        if self.cooldown:
            self.cooldown -= 1
            return 0
        return self.length

    def observe(self, drafted: int, accepted: int) -> None:
        """Adapt the draft length and judge the acceptance after one verification."""
        if accepted == drafted:
            self.length = min(self.draft_max, max(self.length * 2, drafted + 1))
        else:
            self.length = max(self.draft_min, accepted + 1)
        self.drafted += drafted
        self.accepted += accepted
        if self.drafted < WINDOW:
            return
        if self.accepted < MIN_RATE * self.drafted:
            self.cooldown = self.pause
            self.pause = min(COOLDOWN_MAX, self.pause * 2)
            self.length = self.draft_min
            self.drafted = self.accepted = 0.0
        else:
            self.pause = COOLDOWN_FIRST
            # keep a window's worth of history, so old luck fades
            scale = WINDOW / (2 * self.drafted)
            self.drafted *= scale
            self.accepted *= scale


def spec_config(settings: SpecSettings, has_draft: bool) -> SpecConfig:
    """The model's speculation defaults, checked; a bad value is a ConfigError (named as the
    ModelSettings field that sets it)."""
    if settings.type not in SPEC_TYPES:
        raise ConfigError(f"spec_type must be one of {', '.join(SPEC_TYPES)}, got {settings.type!r}")
    if settings.type == "draft" and not has_draft:
        raise ConfigError("spec_type draft needs a draft model (draft_model)")
    if not 0 <= settings.draft_max <= DRAFT_MAX_LIMIT:
        raise ConfigError(f"spec_draft_max must be between 0 and {DRAFT_MAX_LIMIT}")
    if not 1 <= settings.draft_min <= max(1, settings.draft_max):
        raise ConfigError("spec_draft_min must be at least 1 and at most spec_draft_max")
    return SpecConfig(settings.type, settings.draft_max, settings.draft_min, has_draft)


def check_speculation(wanted: Speculation, config: SpecConfig) -> None:
    """A request's speculation choice, or an InvalidRequestError naming the bad field."""
    if wanted.type not in SPEC_TYPES:
        raise InvalidRequestError(f"must be one of {', '.join(SPEC_TYPES)}", param="kronk_speculation.type")
    if wanted.type == "draft" and not config.has_draft_model:
        raise InvalidRequestError("this model is served without a draft model (draft_model)",
                                  param="kronk_speculation.type")
    draft_max = wanted.draft_max
    if draft_max is not None and (isinstance(draft_max, bool) or not 0 <= draft_max <= DRAFT_MAX_LIMIT):
        raise InvalidRequestError(f"must be between 0 and {DRAFT_MAX_LIMIT}", param="kronk_speculation.draft_max")
