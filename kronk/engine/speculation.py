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

Drafts cost decode rows, and what a row costs depends on the machine: on a CPU each one is
about half a 1-token decode, on a GPU a few rows are nearly free. So the engine measures it
(StepCost: decode seconds fitted as a + b*rows over its own generation steps), each slot
keeps a running estimate of how likely its next drafted token is to be accepted, and every
step it drafts the number of tokens that maximises expected tokens per second (SlotSpec.
length). A slot whose drafts would not pay drafts nothing, probing again after a cool-down
that doubles each time, so free-form chat is not slowed by verification it does not profit
from, and a draft model that never agrees is switched off.
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

ROW_COST_PRIOR = 0.5
"""One more decode row's cost relative to a 1-row step, until the engine has measured it (a CPU's
figure: 9.5 ms for one row plus about 5 ms per draft row with SmolLM2 on 2 cores)."""
ACCEPT_PRIOR = 0.6
ACCEPT_PRIOR_WEIGHT = 4.0
"""A new request's acceptance estimate and how many observations it is worth."""
ACCEPT_DECAY = 0.9
"""Each verified token's weight shrinks by this much per token after it, so the estimate follows
the text: a copied block drafts long, the prose after it drafts little."""
COOLDOWN_FIRST = 16
COOLDOWN_MAX = 512
"""Steps a slot waits before probing again after drafts stopped paying, doubling from the first
to the max."""
STEP_COST_DECAY = 0.98
"""Weight of older decode timings in the a + b*rows fit (about the last 50 steps count)."""
PRIOR_STEPS = 4.0
"""The prior row cost counts as this many multi-row steps in the estimate."""


class StepCost:
    """Decode seconds as a + b*rows, fitted on this engine's generation steps (decayed least
    squares), so a draft row is priced as this machine prices it."""

    __slots__ = ("_w", "_multi", "_x", "_y", "_xx", "_xy", "ratio", "one_row_s", "draft_step_s")

    def __init__(self) -> None:
        self._w = self._multi = self._x = self._y = self._xx = self._xy = 0.0
        self.ratio = ROW_COST_PRIOR
        """b / (a + b): one more row relative to a 1-row step (the prior until rows have varied)."""
        self.one_row_s = 0.0
        """a + b: a 1-row step's seconds (the mean step until rows have varied; 0 before any)."""
        self.draft_step_s = 0.0
        """Seconds of one draft-model step (all slots' drafts advance together), 0 before any."""

    def draft_ratio(self) -> float:
        """A draft-model token's cost relative to a 1-row step: its verify row and its draft step."""
        if not self.one_row_s:
            return self.ratio
        return self.ratio + self.draft_step_s / self.one_row_s

    def record_draft(self, steps: int, seconds: float) -> None:
        """The draft model ran `steps` greedy steps in `seconds`."""
        per_step = seconds / steps
        self.draft_step_s = per_step if not self.draft_step_s else 0.8 * self.draft_step_s + 0.2 * per_step

    def record(self, rows: int, seconds: float) -> None:
        """One generation step's decode (no prompt rows in it: prefill scales differently).

        Robust to what else happens on the machine: a step slower than twice what the current
        estimate predicts (another process, a page fault, a first-time graph build) counts as
        twice the prediction, and the fitted ratio is pulled toward the prior until several
        multi-row steps back it, so one stall cannot make rows look dear and stop drafting."""
        if self._w >= 8 and self.one_row_s:
            predicted = self.one_row_s * (1.0 + self.ratio * (rows - 1))
            seconds = min(seconds, 2.0 * predicted)
        d = STEP_COST_DECAY
        self._w = self._w * d + 1.0
        self._multi = self._multi * d + (rows > 1)
        self._x = self._x * d + rows
        self._y = self._y * d + seconds
        self._xx = self._xx * d + rows * rows
        self._xy = self._xy * d + rows * seconds
        spread = self._xx * self._w - self._x * self._x  # w^2 * variance of rows
        if spread < 0.25 * self._w * self._w or self._multi < 1.0:
            self.one_row_s = self._y / self._w
            return  # every step had (nearly) the same rows: no slope to see yet
        slope = (self._xy * self._w - self._x * self._y) / spread
        one_row = (self._y - slope * self._x) / self._w + slope
        if one_row > 0:
            self.one_row_s = one_row
            fitted = min(1.0, max(0.01, slope / one_row))
            self.ratio = (self._multi * fitted + PRIOR_STEPS * ROW_COST_PRIOR) / (self._multi + PRIOR_STEPS)


@dataclass(slots=True)
class SpecConfig(SpecSettings):
    """A model's checked speculation defaults (EngineConfig.speculation), which a request may override."""

    has_draft_model: bool = False


def best_length(accept: float, cap: int, others: int, row_cost: float) -> int:
    """The draft length (0..cap) that maximises a step's expected tokens per unit of decode cost.

    With per-token acceptance `accept`, k drafts yield 1 + accept + ... + accept^k tokens for
    this slot; the step also carries `others` generating rows, each giving one token, and costs
    1 + row_cost * (others + k) one-row steps. The more rows already share a step, the surer a
    draft row must be to pay (the batch is then compute-bound).
    """
    base_tokens = 1.0 + others
    base_cost = 1.0 + row_cost * others
    best, best_rate = 0, base_tokens / base_cost
    tokens, term = base_tokens, 1.0
    for k in range(1, cap + 1):
        term *= accept
        tokens += term
        rate = tokens / (base_cost + row_cost * k)
        if rate > best_rate:
            best, best_rate = k, rate
        elif term < 0.01:
            break
    return best


class SlotSpec:
    """One request's speculation state: its acceptance estimate and its cool-down."""

    __slots__ = ("kind", "draft_max", "draft_min", "accepted", "rejected", "cooldown", "pause", "probe", "draft")

    def __init__(self, draft_max: int, draft_min: int, kind: str = "ngram") -> None:
        self.kind = kind
        """ngram (prompt lookup) or draft (the draft model)."""
        self.draft_max = draft_max
        self.draft_min = max(1, min(draft_min, draft_max))
        self.accepted = ACCEPT_PRIOR * ACCEPT_PRIOR_WEIGHT
        self.rejected = (1.0 - ACCEPT_PRIOR) * ACCEPT_PRIOR_WEIGHT
        """Decayed counts of drafted tokens accepted and of drafts cut short by a rejection: the
        per-token acceptance is accepted / (accepted + rejected) (a geometric run length)."""
        self.cooldown = 0
        """Steps left without drafting."""
        self.pause = COOLDOWN_FIRST
        self.probe = False
        """The cool-down just ended: draft once whatever the estimate, to see if it changed."""
        self.draft = None
        """The tokens being verified in the current decode (a numpy view), or None."""

    @property
    def acceptance(self) -> float:
        """The estimated chance that the next drafted token is accepted."""
        return self.accepted / (self.accepted + self.rejected)

    def cooling(self) -> bool:
        """True while the slot waits out a cool-down (counts the step)."""
        if not self.cooldown:
            return False
        self.cooldown -= 1
        self.probe = not self.cooldown
        return True

    def length(self, cap: int, others: int, row_cost: float) -> int:
        """Draft tokens to verify this step, at most `cap` (the room left, and for prompt lookup
        the length of the match behind the proposal); 0 when drafting would not pay, which
        starts a cool-down."""
        cap = min(cap, self.draft_max)
        if cap < self.draft_min:
            return 0
        if self.probe:
            self.probe = False
            return self.draft_min
        k = best_length(self.acceptance, cap, others, row_cost)
        if k >= self.draft_min:
            self.pause = COOLDOWN_FIRST
            return k
        self.cooldown = self.pause
        self.pause = min(COOLDOWN_MAX, self.pause * 2)
        return 0

    def observe(self, drafted: int, accepted: int) -> None:
        """Fold one verification into the acceptance estimate."""
        fade = ACCEPT_DECAY ** (accepted + 1)
        self.accepted = self.accepted * fade + accepted
        self.rejected = self.rejected * fade + (accepted < drafted)


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
