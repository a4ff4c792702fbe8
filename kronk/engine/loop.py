"""The continuous-batching engine: one llama context, many slots, one decode thread.

`Engine` is the public face and the thread's loop; the work is split by job:
kronk.engine.slot (each slot's explicit state machine and the per-request `Run`),
kronk.engine.scheduler (admission, prefix reuse, the RAM prompt cache, KV pressure) and
kronk.engine.executor (batch building, decode, sampling, emitting). Idle slots keep their
KV so a new prompt that shares a prefix (the next turn of a chat) only evaluates what is
new; a bounded RAM cache keeps sequence states that would otherwise be overwritten, and
holds idle slots' states while other slots generate (idle cells in the unified KV cache
would slow every decode).

Only the engine thread calls into the context. Other threads talk to it through
`submit` / `cancel` / `call`, guarded by one condition variable.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kronk.engine.attention import resolve_attention
from kronk.engine.cache import PromptCache
from kronk.engine.draft import DraftModel
from kronk.engine.executor import Executor
from kronk.engine.jobs import Job, Sink
from kronk.engine.scheduler import MIN_PREFIX_REUSE as MIN_PREFIX_REUSE  # re-exported
from kronk.engine.scheduler import Scheduler
from kronk.engine.slot import Slot, SlotState
from kronk.engine.speculation import StepCost, check_speculation, spec_config
from kronk.engine.types import Finish, GenerateRequest, SpecSettings, Usage
from kronk.errors import (
    BusyError,
    ContextOverflowError,
    InvalidRequestError,
    KronkError,
)
from kronk.llama import (
    Batch,
    Context,
    Model,
    supports_gpu_offload,
)
from kronk.llama.context import ContextParams

logger = logging.getLogger("kronk.engine")


def _default_context() -> ContextParams:
    return ContextParams(n_seq_max=4)


@dataclass(slots=True)
class EngineConfig:
    """How an Engine serves its model. The llama context's settings are declared once, in
    ContextParams: its n_seq_max is the number of slots; the engine always sets kv_unified, and
    for embeddings n_ubatch = n_batch; deterministic may change flash_attn and the cache types."""

    context: ContextParams = field(default_factory=_default_context)
    queue_size: int = 64
    """Jobs that may wait for a slot; one more gets BusyError."""
    prompt_cache_bytes: int = 256 * 1024 * 1024
    # While other slots generate, move idle slots' KV into the RAM prompt cache: with a
    # unified KV cache every decode attends over all used cells, so idle history slows
    # every running stream (llama-server's --cache-idle-slots does the same).
    cache_idle_slots: bool = True
    deterministic: bool = False
    """Batch-invariant attention on the CPU, so greedy output repeats whatever else runs
    (flash attention on, V stored as bf16; see kronk.engine.attention). Costs speed."""
    speculation: SpecSettings = field(default_factory=SpecSettings)
    """Speculative decoding for requests that do not choose (see kronk.engine.speculation)."""
    draft_model: Model | None = None
    """A loaded model with the same vocabulary, for speculation type draft (the caller owns and frees it)."""


@dataclass(slots=True)
class EngineStats:
    slots: int
    active_slots: int
    queued: int
    n_ctx: int
    kv_cells_used: int
    prompt_tokens_total: int
    completion_tokens_total: int
    prompt_tokens_cached_total: int
    prompt_cache_hits: int
    prompt_cache_entries: int
    prompt_cache_bytes: int
    steps: int
    python_seconds: float
    decode_seconds: float
    spec_drafted_tokens: int = 0
    """Draft tokens verified (since load)."""
    spec_accepted_tokens: int = 0
    """Draft tokens the model's own choice confirmed (since load)."""
    spec_row_cost: float = 0.0
    """A draft row's decode cost relative to a one-token step, as measured on this machine: what
    speculation weighs each draft against (kronk.engine.speculation.StepCost)."""


@dataclass(slots=True)
class SlotStats:
    """What one slot is doing now (read without the lock: a snapshot for dashboards)."""

    seq_id: int
    state: str
    """idle, prefill or generating"""
    n_cached: int
    """Tokens of the sequence in the KV cache (prompt + generated, or kept history when idle)."""
    n_prompt: int
    n_generated: int
    tokens_per_second: float


class Engine(Scheduler, Executor):
    """Serves generation jobs for one model. Thread-safe; use as a context manager or close()."""

    def __init__(self, model: Model, config: EngineConfig | None = None) -> None:
        self.model = model
        self.config = config = config or EngineConfig()
        self.vocab = model.vocab
        self.spec_config = spec_config(config.speculation, config.draft_model is not None)
        wanted = config.context
        self.attention = resolve_attention(
            wanted.flash_attn, wanted.cache_type_k, wanted.cache_type_v,
            deterministic=config.deterministic and not wanted.embeddings, cpu=not supports_gpu_offload(),
        )
        params = dataclasses.replace(
            wanted,
            n_ubatch=wanted.n_batch if wanted.embeddings else wanted.n_ubatch,
            n_seq_max=max(1, wanted.n_seq_max),
            flash_attn=self.attention.flash_attn,
            cache_type_k=self.attention.cache_type_k,
            cache_type_v=self.attention.cache_type_v,
            kv_unified=True,
        )
        self.ctx = Context(model, params)
        self.drafter: DraftModel | None = None
        if config.draft_model is not None:
            try:
                self.drafter = DraftModel(model, config.draft_model, dataclasses.replace(params))
            except BaseException:
                self.ctx.close()
                raise
        self.n_ctx = self.ctx.n_ctx_seq
        self.slots = [Slot(i, self.n_ctx) for i in range(self.ctx.n_seq_max)]
        self.batch = Batch(self.ctx.n_batch, 1)
        self.prompt_cache = PromptCache(config.prompt_cache_bytes)
        self._park_idle = config.cache_idle_slots and self.prompt_cache.budget_bytes > 0
        self._eog = self.vocab.eog_mask()
        self._eog_ids = np.flatnonzero(self._eog)
        self._piece = self.vocab.piece
        self._cond = threading.Condition()
        self._pending: deque[Job] = deque()
        self._calls: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        # Cheap per-step skips: is there a cancelled job to reap, an idle slot whose KV to park?
        self._cancel_requested = False
        self._idle_kv = False
        # A job went back to the queue for want of KV cells: admit nothing until a job ends.
        self._await_room = False
        # Events of one step, handed to the sinks together just before the next decode
        # (while llama_decode runs without the GIL) or before the thread waits.
        self._outbox: list[tuple[Sink, Any]] = []
        self._closing = False
        self._prompt_total = 0
        self._completion_total = 0
        self._cached_total = 0
        self._steps = 0
        self._python_s = 0.0
        self._decode_s = 0.0
        self._spec_drafted = 0
        self._spec_accepted = 0
        self._step_cost = StepCost()
        self._thread = threading.Thread(target=self._run, name=f"kronk-engine-{model.path.name}", daemon=True)
        self._thread.start()

    # --- public, any thread -------------------------------------------------------

    def submit(self, request: GenerateRequest, sink: Sink, choice: int = 0) -> Job:
        """Queue a generation; events go to `sink`. Raises BusyError when the queue is full."""
        self._validate(request)
        job = Job(request, sink, choice)
        with self._cond:
            if self._closing:
                raise BusyError("the model is unloading", retry_after=1.0)
            if len(self._pending) >= self.config.queue_size:
                raise BusyError(f"all {len(self.slots)} slots busy and {len(self._pending)} requests queued")
            self._pending.append(job)
            self._cond.notify()
        return job

    def cancel(self, job: Job) -> None:
        """Stop a job at the next step; its slot is freed and it finishes with 'cancelled'."""
        with self._cond:
            job.cancelled = True
            self._cancel_requested = True
            self._cond.notify()

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run `fn` on the engine thread between steps (for embeddings and state work)."""
        future: Future[Any] = Future()
        with self._cond:
            if self._closing:
                raise BusyError("the model is unloading", retry_after=1.0)
            self._calls.append((fn, future))
            self._cond.notify()
        return future

    @property
    def active(self) -> int:
        return sum(1 for slot in self.slots if slot.busy)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def stats(self) -> EngineStats:
        used = sum(slot.n_cached for slot in self.slots)
        return EngineStats(
            slots=len(self.slots),
            active_slots=self.active,
            queued=self.queued,
            n_ctx=self.ctx.n_ctx,
            kv_cells_used=used,
            prompt_tokens_total=self._prompt_total,
            completion_tokens_total=self._completion_total,
            prompt_tokens_cached_total=self._cached_total,
            prompt_cache_hits=self.prompt_cache.hits,
            prompt_cache_entries=len(self.prompt_cache),
            prompt_cache_bytes=self.prompt_cache.used_bytes,
            steps=self._steps,
            python_seconds=self._python_s,
            decode_seconds=self._decode_s,
            spec_drafted_tokens=self._spec_drafted,
            spec_accepted_tokens=self._spec_accepted,
            spec_row_cost=self._step_cost.ratio,
        )

    def slot_stats(self) -> list[SlotStats]:
        """Each slot's state, sequence length and generation speed so far."""
        now = time.perf_counter()
        out = []
        for slot in self.slots:
            run, state = slot.run, slot.state
            if run is None:
                out.append(SlotStats(slot.seq_id, "idle", slot.n_cached, 0, 0, 0.0))
                continue
            generated, first = run.n_generated, run.first_token_at
            speed = (generated - 1) / (now - first) if first and generated > 1 and now > first else 0.0
            label = "generating" if state is SlotState.GENERATE else "prefill"
            out.append(SlotStats(slot.seq_id, label, slot.n_cached, run.n_prompt, generated, round(speed, 2)))
        return out

    def close(self) -> None:
        """Cancel everything, stop the thread and free the context (not the model)."""
        with self._cond:
            self._closing = True
            for job in self._pending:
                job.cancelled = True
            for slot in self.slots:
                if slot.run is not None:
                    slot.run.job.cancelled = True
            self._cancel_requested = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=60)
        if self.drafter is not None:
            self.drafter.close()
        self.ctx.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- validation ----------------------------------------------------------------

    def _validate(self, request: GenerateRequest) -> None:
        n = len(request.prompt_tokens) if request.media is None else request.media.n_tokens
        if n == 0:
            raise InvalidRequestError("the prompt is empty", param="prompt")
        if n >= self.n_ctx:
            raise ContextOverflowError(
                f"the prompt has {n} tokens but the context holds {self.n_ctx}", param="messages"
            )
        if request.media is None:
            self.vocab.check_tokens(request.prompt_tokens)
        if request.max_tokens is not None and request.max_tokens < 0:
            raise InvalidRequestError("max_tokens must be >= 0", param="max_tokens")
        if not 0 <= request.top_logprobs <= 20:
            raise InvalidRequestError("top_logprobs must be between 0 and 20", param="top_logprobs")
        if request.speculation is not None:
            check_speculation(request.speculation, self.spec_config)

    # --- the engine thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                if self._outbox and not self._busy():
                    self._flush()
                with self._cond:
                    while (
                        not self._closing
                        and not self._pending
                        and not self._calls
                        and not self._busy()
                    ):
                        self._cond.wait()
                    if self._closing and not self._busy() and not self._calls:
                        for job in self._pending:
                            self._finish_unstarted(job)
                        self._pending.clear()
                        break
                    calls = list(self._calls)
                    self._calls.clear()
                for fn, future in calls:
                    self._run_call(fn, future)
                if calls:
                    self._idle_kv = True  # a call may have left KV in an idle slot
                if self._cancel_requested:
                    self._reap_cancelled()
                if self._pending:
                    self._admit()
                if self._busy():
                    if self._park_idle and self._idle_kv:
                        self._park_idle_slots()
                    self._step()
            self._flush()
        except BaseException as exc:  # a bug: fail every job rather than hang them
            logger.exception("engine thread crashed")
            self._flush()
            with self._cond:
                self._closing = True
                jobs = list(self._pending) + [s.job for s in self.slots if s.job is not None]
                self._pending.clear()
            for job in jobs:
                job.sink(exc if isinstance(exc, KronkError) else KronkError(f"engine failure: {exc}"))

    def _run_call(self, fn: Callable[[], Any], future: Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    def _finish_unstarted(self, job: Job) -> None:
        job.done = True
        self._emit(job, Finish("cancelled", Usage(prompt_tokens=len(job.prompt)), job.choice))

    def _reap_cancelled(self) -> None:
        with self._cond:
            self._cancel_requested = False
            cancelled = [job for job in self._pending if job.cancelled]
            for job in cancelled:
                self._pending.remove(job)
        for job in cancelled:
            self._finish_unstarted(job)
        for slot in self.slots:
            if slot.run is not None and slot.run.job.cancelled:
                self._finish(slot, "cancelled")

    # --- embeddings (run on the engine thread via call()) ---------------------------------

    def embed_tokens(self, inputs: list[list[int]], normalize: bool = True) -> list[np.ndarray]:
        """Pooled embeddings for many inputs, decoding as many sequences per batch as fit."""
        if not self.config.context.embeddings:
            raise InvalidRequestError("this model was not loaded for embeddings")
        for tokens in inputs:
            if not tokens:
                raise InvalidRequestError("an input is empty", param="input")
            if len(tokens) > self.ctx.n_batch or len(tokens) > self.n_ctx:
                raise ContextOverflowError(
                    f"an input has {len(tokens)} tokens; the model takes at most {min(self.ctx.n_batch, self.n_ctx)}",
                    param="input",
                )
            self.vocab.check_tokens(tokens)
        results: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(inputs)
        batch = self.batch
        index = 0
        n_seq = len(self.slots)
        while index < len(inputs):
            batch.clear()
            members: list[tuple[int, int]] = []
            while index < len(inputs) and len(members) < n_seq and len(inputs[index]) <= batch.room:
                seq = len(members)
                batch.add_sequence(inputs[index], 0, seq, True)
                batch.logits[batch.n_tokens - len(inputs[index]) : batch.n_tokens] = 1
                members.append((index, seq))
                index += 1
            self.ctx.clear()
            self.ctx.decode(batch)
            for item, seq in members:
                vector = self.ctx.embeddings_seq(seq)
                if normalize:
                    norm = float(np.linalg.norm(vector))
                    if norm > 0 and math.isfinite(norm):
                        vector = vector / norm
                results[item] = vector
        self.ctx.clear()
        return results
