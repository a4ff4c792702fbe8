"""A slot of the context as an explicit state machine, and the per-request state it serves.

    FREE ──bind──▶ PREFILL ──prefilled──▶ GENERATE ──unbind──▶ CACHED (or FREE)
      ▲               │                                           │
      └──── evict ◀───┴──unbind (released before its first token) ┘

FREE: no job, no KV. CACHED: no job, KV of an earlier conversation kept for prefix reuse.
PREFILL: a job whose prompt is still being evaluated. GENERATE: a job that samples a token
per step. Each transition checks the state it leaves, so a scheduling bug fails loudly
instead of corrupting another request's KV. Everything that belongs to one request lives
in `Run`, created when the slot takes the job and dropped when it lets go, so nothing is
reset by hand.
"""

from __future__ import annotations

import enum

import numpy as np

from kronk.engine.jobs import Job
from kronk.engine.speculation import SlotSpec
from kronk.engine.stop import StopMatcher
from kronk.llama import SamplerChain, Utf8Stream


class SlotState(enum.Enum):
    FREE = "free"
    CACHED = "cached"
    PREFILL = "prefill"
    GENERATE = "generate"


class IllegalTransition(AssertionError):
    """A slot was asked to change state from a state that does not allow it (an engine bug)."""


class Run:
    """One request's state while a slot serves it."""

    __slots__ = (
        "job", "sampler", "prompt_pos", "n_prompt", "n_prompt_cached", "next_token", "n_generated", "utf8",
        "stop", "max_tokens", "logprobs", "top_logprobs", "ignore_eos", "first_token_at", "spec",
    )

    def __init__(
        self, job: Job, sampler: SamplerChain, keep: int, max_tokens: int, spec: SlotSpec | None = None
    ) -> None:
        request = job.request
        self.job = job
        self.sampler = sampler
        self.n_prompt = len(job.prompt)
        self.prompt_pos = keep
        """Prompt tokens already in the KV cache."""
        self.n_prompt_cached = keep
        self.next_token = -1
        """The sampled token the next step decodes (GENERATE)."""
        self.n_generated = 0
        self.utf8 = Utf8Stream()
        self.stop = StopMatcher(request.stop)
        self.max_tokens = max_tokens
        self.logprobs = request.logprobs
        self.top_logprobs = request.top_logprobs if request.logprobs else 0
        self.ignore_eos = request.ignore_eos
        self.first_token_at = 0.0
        self.spec = spec
        """Speculative decoding state, or None when this request does not speculate."""

    def close(self) -> None:
        self.sampler.close()


class Slot:
    """One sequence of the context: its KV bookkeeping, its state and the run it serves."""

    __slots__ = ("seq_id", "state", "cache", "n_cached", "run", "row", "last_used")

    def __init__(self, seq_id: int, n_ctx: int) -> None:
        self.seq_id = seq_id
        self.state = SlotState.FREE
        self.cache = np.zeros(n_ctx + 1, dtype=np.int32)
        """Token ids of the KV cells 0..n_cached (-1 for media positions)."""
        self.n_cached = 0
        self.run: Run | None = None
        self.row = -1
        """Batch row whose logits this slot samples after the current decode, or -1."""
        self.last_used = 0.0

    @property
    def busy(self) -> bool:
        return self.run is not None

    @property
    def job(self) -> Job | None:
        run = self.run
        return run.job if run is not None else None

    def _expect(self, action: str, *states: SlotState) -> None:
        if self.state not in states:
            raise IllegalTransition(f"slot {self.seq_id}: cannot {action} in state {self.state.value}")

    # --- transitions -------------------------------------------------------------

    def bind(self, run: Run) -> None:
        """FREE/CACHED → PREFILL: the slot takes a request (its first `run.prompt_pos` cells reused)."""
        self._expect("bind", SlotState.FREE, SlotState.CACHED)
        if run.prompt_pos > self.n_cached:
            raise IllegalTransition(f"slot {self.seq_id}: reuses {run.prompt_pos} of {self.n_cached} cells")
        self.run = run
        self.row = -1
        self.state = SlotState.PREFILL

    def prefilled(self) -> None:
        """PREFILL → GENERATE: the whole prompt is in the KV cache; sampling starts."""
        self._expect("start generating", SlotState.PREFILL)
        self.state = SlotState.GENERATE

    def unbind(self, now: float) -> Run:
        """PREFILL/GENERATE → CACHED (FREE without KV): the request ends or goes back to the queue."""
        self._expect("unbind", SlotState.PREFILL, SlotState.GENERATE)
        run = self.run
        assert run is not None
        run.close()
        self.run = None
        self.row = -1
        self.last_used = now
        self.state = SlotState.CACHED if self.n_cached > 0 else SlotState.FREE
        return run

    def hold(self, n_cells: int) -> None:
        """An idle slot's sequence now has `n_cells` cells (the caller removed or decoded them)."""
        self._expect("resize its idle KV", SlotState.FREE, SlotState.CACHED)
        self.n_cached = n_cells
        self.state = SlotState.CACHED if n_cells > 0 else SlotState.FREE

    def filled(self, tokens: np.ndarray) -> None:
        """An idle, emptied slot now holds `tokens` restored from the prompt cache."""
        self._expect("restore", SlotState.FREE)
        self.cache[: len(tokens)] = tokens
        self.n_cached = len(tokens)
        self.state = SlotState.CACHED if len(tokens) else SlotState.FREE
