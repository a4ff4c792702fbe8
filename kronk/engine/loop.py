"""The continuous-batching engine: one llama context, many slots, one decode thread.

Every step puts one token per generating slot into the batch, then fills the room
left with prompt chunks of slots still prefilling (chunked prefill: a long new prompt
never freezes running streams). After the decode, each slot that produced logits
samples in C, and its text goes through UTF-8 reassembly and the stop-string matcher
before it is queued for the job's sink; a step's events are delivered together just
before the next decode. Idle slots keep their KV so a new prompt that shares a prefix
(the next turn of a chat) only evaluates what is new; a bounded RAM cache keeps
sequence states that would otherwise be overwritten, and holds idle slots' states while
other slots generate (idle cells in the unified KV cache would slow every decode).

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
from dataclasses import dataclass
from typing import Any

import numpy as np

from kronk.engine.attention import resolve_attention
from kronk.engine.cache import PromptCache, common_prefix
from kronk.engine.jobs import Job, Sink
from kronk.engine.logprobs import token_logprobs
from kronk.engine.stop import StopMatcher
from kronk.engine.types import Finish, GenerateRequest, TextDelta, Usage
from kronk.errors import (
    BusyError,
    ContextOverflowError,
    InvalidRequestError,
    KronkError,
    NativeError,
)
from kronk.llama import (
    Batch,
    Context,
    KVCacheFullError,
    Model,
    SamplerChain,
    Utf8Stream,
    supports_gpu_offload,
)
from kronk.llama.context import ContextParams

logger = logging.getLogger("kronk.engine")

MIN_PREFIX_REUSE = 16
"""Shared prompt tokens below which a slot is chosen by emptiness and age, not by prefix."""


@dataclass(slots=True)
class EngineConfig:
    n_ctx: int = 4096
    slots: int = 4
    n_batch: int = 2048
    n_ubatch: int = 512
    threads: int = 0
    threads_batch: int = 0
    flash_attn: str = "auto"
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    queue_size: int = 64
    prompt_cache_bytes: int = 256 * 1024 * 1024
    # While other slots generate, move idle slots' KV into the RAM prompt cache: with a
    # unified KV cache every decode attends over all used cells, so idle history slows
    # every running stream (llama-server's --cache-idle-slots does the same).
    cache_idle_slots: bool = True
    embeddings: bool = False
    pooling: str = "unspecified"
    deterministic: bool = False
    """Batch-invariant attention on the CPU, so greedy output repeats whatever else runs
    (flash attention on, V stored as bf16; see kronk.engine.attention). Costs speed."""


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


class Slot:
    """One sequence of the context and the job it serves."""

    __slots__ = (
        "seq_id", "job", "cache", "n_cached", "prompt_pos", "sampler", "next_token", "row", "n_generated",
        "utf8", "stop", "max_tokens", "n_prompt", "n_prompt_cached", "first_token_at", "last_used",
        "logprobs", "top_logprobs", "ignore_eos",
    )

    def __init__(self, seq_id: int, n_ctx: int) -> None:
        self.seq_id = seq_id
        self.job: Job | None = None
        self.cache = np.zeros(n_ctx + 1, dtype=np.int32)
        self.n_cached = 0
        self.prompt_pos = 0
        self.sampler: SamplerChain | None = None
        self.next_token = -1
        self.row = -1
        self.n_generated = 0
        self.utf8 = Utf8Stream()
        self.stop = StopMatcher([])
        self.max_tokens = 0
        self.n_prompt = 0
        self.n_prompt_cached = 0
        self.first_token_at = 0.0
        self.last_used = 0.0
        self.logprobs = False
        self.top_logprobs = 0
        self.ignore_eos = False

    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def prefilling(self) -> bool:
        return self.job is not None and self.prompt_pos < self.n_prompt


class Engine:
    """Serves generation jobs for one model. Thread-safe; use as a context manager or close()."""

    def __init__(self, model: Model, config: EngineConfig | None = None) -> None:
        self.model = model
        self.config = config = config or EngineConfig()
        self.vocab = model.vocab
        self.attention = resolve_attention(
            config.flash_attn, config.cache_type_k, config.cache_type_v,
            deterministic=config.deterministic and not config.embeddings, cpu=not supports_gpu_offload(),
        )
        params = ContextParams(
            n_ctx=config.n_ctx,
            n_batch=config.n_batch,
            n_ubatch=config.n_batch if config.embeddings else config.n_ubatch,
            n_seq_max=max(1, config.slots),
            n_threads=config.threads,
            n_threads_batch=config.threads_batch,
            embeddings=config.embeddings,
            pooling=config.pooling,
            flash_attn=self.attention.flash_attn,
            cache_type_k=self.attention.cache_type_k,
            cache_type_v=self.attention.cache_type_v,
            kv_unified=True,
        )
        self.ctx = Context(model, params)
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
        )

    def slot_stats(self) -> list[SlotStats]:
        """Each slot's state, sequence length and generation speed so far."""
        now = time.perf_counter()
        out = []
        for slot in self.slots:
            job, generated, first = slot.job, slot.n_generated, slot.first_token_at
            state = "idle" if job is None else "prefill" if slot.prompt_pos < slot.n_prompt else "generating"
            speed = (generated - 1) / (now - first) if job is not None and first and generated > 1 and now > first \
                else 0.0
            out.append(SlotStats(slot.seq_id, state, slot.n_cached, slot.n_prompt if job is not None else 0,
                                 generated if job is not None else 0, round(speed, 2)))
        return out

    def close(self) -> None:
        """Cancel everything, stop the thread and free the context (not the model)."""
        with self._cond:
            self._closing = True
            for job in self._pending:
                job.cancelled = True
            for slot in self.slots:
                if slot.job is not None:
                    slot.job.cancelled = True
            self._cancel_requested = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=60)
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

    def _busy(self) -> bool:
        return any(slot.busy for slot in self.slots)

    def _emit(self, job: Job, item: Any) -> None:
        self._outbox.append((job.sink, item))

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        for sink, item in outbox:
            try:
                sink(item)
            except Exception:  # a consumer's bug must not stop the other streams
                logger.exception("an event sink raised")

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
            if slot.job is not None and slot.job.cancelled:
                self._finish(slot, "cancelled")

    # --- admission and prefix reuse ------------------------------------------------------

    def _admit(self) -> None:
        while True:
            free = [slot for slot in self.slots if not slot.busy]
            if not free:
                return
            if self._await_room and len(free) < len(self.slots):
                return  # a job waits for cells: nothing new starts until a running one ends
            self._await_room = False
            with self._cond:
                if not self._pending:
                    return
                job = self._pending.popleft()
            try:
                self._assign(job, free)
            except Exception as exc:
                job.done = True
                self._idle_kv = True  # the slot may hold part of the failed prompt
                self._emit(job, exc if isinstance(exc, KronkError) else KronkError(str(exc)))

    def _assign(self, job: Job, free: list[Slot]) -> None:
        if job.request.media is not None:
            self._assign_media(job, free)
            return
        prompt = job.prompt
        shared = {slot.seq_id: common_prefix(slot.cache[: slot.n_cached], prompt) for slot in free}
        slot = max(free, key=lambda s: (shared[s.seq_id], -s.last_used))
        if shared[slot.seq_id] < MIN_PREFIX_REUSE:
            # Nothing worth reusing (a shared BOS is not): take an empty slot, else the
            # least recently used, so cached conversations stay where they are.
            slot = min(free, key=lambda s: (s.n_cached > 0, s.last_used))
        best_len = shared[slot.seq_id]
        cached_len, entry = self.prompt_cache.best(prompt) if self.prompt_cache.budget_bytes else (0, None)
        if entry is not None and cached_len > best_len + 16:
            self._save_slot_state(slot)
            self.ctx.seq_rm(slot.seq_id)
            slot.n_cached = 0
            best_len = cached_len if self._restore(slot, entry.tokens, entry.state) else 0
        keep = min(best_len, len(prompt) - 1)
        if slot.n_cached - keep >= self.prompt_cache.min_tokens and keep < slot.n_cached // 2:
            self._save_slot_state(slot)
        if not self.ctx.seq_rm(slot.seq_id, keep, -1):
            self.ctx.seq_rm(slot.seq_id)
            keep = 0
        slot.n_cached = keep
        self._start(slot, job, keep)
        if slot.max_tokens == 0:
            self._finish(slot, "length")

    def _assign_media(self, job: Job, free: list[Slot]) -> None:
        """Evaluate a multimodal prompt whole into a fresh slot, then sample its first token.

        The chunks are decoded by libmtmd on this thread between steps, so running streams
        pause for the image/audio encode; media positions hold no token ids, so nothing is
        reused from or saved to the prompt cache for this slot.
        """
        media = job.request.media
        assert media is not None
        slot = min(free, key=lambda s: (s.n_cached > 0, s.last_used))
        self._save_slot_state(slot)
        self.ctx.seq_rm(slot.seq_id)
        slot.n_cached = 0
        # The prompt is decoded in one go, so its cells must be free first.
        if self._free_cells() < media.n_tokens:
            self._drop_idle_kv()
            if self._free_cells() < media.n_tokens and self._busy():
                self._wait_for_room(job)
                return
        try:
            n_past = media.evaluate(self.ctx, slot.seq_id)
        except BaseException:
            self.ctx.seq_rm(slot.seq_id)
            raise
        finally:
            media.close()
        slot.cache[:n_past] = -1
        slot.n_cached = n_past
        self._start(slot, job, 0)
        slot.prompt_pos = slot.n_prompt
        if slot.max_tokens == 0:
            self._finish(slot, "length")
            return
        slot.row = -1  # the helper's decode left the last prompt token's logits last
        self._sample(slot, time.perf_counter())

    def _start(self, slot: Slot, job: Job, keep: int) -> None:
        """Bind `job` to `slot`, whose first `keep` prompt tokens are already in the KV cache."""
        prompt = job.prompt
        request = job.request
        sampling = request.sampling
        if request.ignore_eos:
            # as llama.cpp does: end-of-generation tokens can never be sampled
            bias = dict(sampling.logit_bias)
            bias.update({int(t): -math.inf for t in self._eog_ids})
            sampling = dataclasses.replace(sampling, logit_bias=bias)
        slot.sampler = SamplerChain.from_params(self.model, sampling)
        # Penalty samplers need the prompt history, as llama.cpp's tools feed it.
        if request.media is None and slot.sampler.names and any(n in ("penalties", "dry") for n in slot.sampler.names):
            for token in prompt.tolist():
                slot.sampler.accept_prompt(token)
        slot.job = job
        slot.prompt_pos = keep
        slot.n_prompt = len(prompt)
        slot.n_prompt_cached = keep
        slot.next_token = -1
        slot.row = -1
        slot.n_generated = 0
        slot.utf8 = Utf8Stream()
        slot.stop = StopMatcher(request.stop)
        limit = self.n_ctx - len(prompt)
        slot.max_tokens = limit if request.max_tokens is None else min(request.max_tokens, limit)
        slot.logprobs = request.logprobs
        slot.top_logprobs = request.top_logprobs if request.logprobs else 0
        slot.ignore_eos = request.ignore_eos
        slot.first_token_at = 0.0
        job.started_at = time.perf_counter()
        self._prompt_total += len(prompt)
        self._cached_total += keep

    def _park_idle_slots(self) -> None:
        self._flush()  # the last step's tokens go out before the copy
        self._idle_kv = False
        self._drop_idle_kv()

    def _save_slot_state(self, slot: Slot) -> None:
        if self.prompt_cache.budget_bytes <= 0 or slot.n_cached < self.prompt_cache.min_tokens:
            return
        if slot.cache[0] < 0:  # a multimodal prompt: no token ids to match it by
            return
        tokens = slot.cache[: slot.n_cached]
        state = self.ctx.seq_state_save(slot.seq_id)
        self.prompt_cache.put(tokens, state)

    # --- one decode step ----------------------------------------------------------------

    def _step(self) -> None:
        t0 = time.perf_counter()
        batch = self.batch
        batch.clear()
        generating = []
        for slot in self.slots:
            if slot.job is not None and slot.next_token >= 0:
                slot.row = batch.add(slot.next_token, slot.n_cached, slot.seq_id, True)
                generating.append(slot)
        # Chunked prefill: while streams run, each step takes at most one ubatch of prompt.
        budget = batch.room if not generating else max(0, min(batch.room, self.ctx.n_ubatch - len(generating)))
        prefilled: list[tuple[Slot, int]] = []
        for slot in sorted((s for s in self.slots if s.prefilling), key=lambda s: s.job.submitted_at):
            if budget <= 0:
                break
            take = min(budget, slot.n_prompt - slot.prompt_pos)
            chunk = slot.job.prompt[slot.prompt_pos : slot.prompt_pos + take]
            last = slot.prompt_pos + take == slot.n_prompt
            row = batch.add_sequence(chunk, slot.n_cached, slot.seq_id, last)
            slot.row = row if last else -1
            prefilled.append((slot, take))
            budget -= take
        self._flush()
        if batch.n_tokens == 0:
            return
        t1 = time.perf_counter()
        try:
            self.ctx.decode(batch)
        except KVCacheFullError:
            self._relieve_kv_pressure()
            return
        t2 = time.perf_counter()
        for slot in generating:
            slot.cache[slot.n_cached] = slot.next_token
            slot.n_cached += 1
        for slot, take in prefilled:
            slot.cache[slot.n_cached : slot.n_cached + take] = slot.job.prompt[slot.prompt_pos : slot.prompt_pos + take]
            slot.n_cached += take
            slot.prompt_pos += take
        now = time.perf_counter()
        for slot in self.slots:
            if slot.job is not None and slot.row >= 0:
                self._sample(slot, now)
                slot.row = -1
        self._steps += 1
        t3 = time.perf_counter()
        self._decode_s += t2 - t1
        self._python_s += (t1 - t0) + (t3 - t2)

    def _sample(self, slot: Slot, now: float) -> None:
        job = slot.job
        assert job is not None and slot.sampler is not None
        logprob_entries = None
        if slot.logprobs:
            logits = self.ctx.logits(slot.row)
        token = slot.sampler.sample(self.ctx, slot.row)
        if slot.logprobs:
            logprob_entries = [token_logprobs(logits, token, slot.top_logprobs, self._piece)]
        if slot.n_generated == 0:
            slot.first_token_at = now
        slot.n_generated += 1
        if not slot.ignore_eos and self._eog[token]:
            self._finish(slot, "stop")
            return
        text = slot.utf8.push(self._piece(token))
        emit, stopped = slot.stop.push(text) if text else ("", False)
        if emit or logprob_entries:
            self._emit(job, TextDelta(emit, job.choice, logprob_entries))
        if stopped:
            self._finish(slot, "stop", flush=False)
        elif slot.n_generated >= slot.max_tokens or slot.n_cached + 1 >= self.n_ctx:
            self._finish(slot, "length")
        else:
            slot.next_token = token

    def _finish(self, slot: Slot, reason: Any, flush: bool = True) -> None:
        job = slot.job
        assert job is not None
        if flush and reason != "cancelled":
            tail = slot.stop.push(slot.utf8.flush())[0] + slot.stop.flush()
            if tail:
                self._emit(job, TextDelta(tail, job.choice))
        elapsed = (time.perf_counter() - slot.first_token_at) if slot.first_token_at else 0.0
        usage = Usage(
            prompt_tokens=slot.n_prompt,
            completion_tokens=slot.n_generated,
            cached_tokens=slot.n_prompt_cached,
            time_to_first_token_ms=((slot.first_token_at - job.submitted_at) * 1000.0) if slot.first_token_at else 0.0,
            tokens_per_second=(slot.n_generated - 1) / elapsed if elapsed > 0 and slot.n_generated > 1 else 0.0,
            queue_wait_ms=(job.started_at - job.submitted_at) * 1000.0 if job.started_at else 0.0,
        )
        self._completion_total += slot.n_generated
        if slot.sampler is not None:
            slot.sampler.close()
            slot.sampler = None
        slot.job = None
        slot.next_token = -1
        slot.row = -1
        slot.last_used = time.perf_counter()
        self._idle_kv = True
        self._await_room = False
        job.done = True
        self._emit(job, Finish(reason, usage, job.choice, slot.stop.matched if reason == "stop" else None))

    def _drop_idle_kv(self, keep: Slot | None = None) -> bool:
        """Move idle slots' KV (but `keep`'s) to the RAM prompt cache and free their cells;
        whether any cells were freed."""
        idle = [slot for slot in self.slots if not slot.busy and slot.n_cached > 0 and slot is not keep]
        for slot in idle:
            self._evict(slot)
        return bool(idle)

    def _evict(self, slot: Slot) -> None:
        """Save the slot's KV to the RAM prompt cache (when worth it) and free its cells."""
        self._save_slot_state(slot)
        self.ctx.seq_rm(slot.seq_id)
        slot.n_cached = 0

    def _restore(self, slot: Slot, tokens: Any, state: bytes) -> bool:
        """Load a cached prompt's KV into the empty `slot`. Where its cells are not free
        (a long generation holds them), idle slots give theirs up and it is tried once more;
        if it still does not fit, the slot stays empty and the prompt is computed instead,
        so a cache hit can never fail a request."""
        for attempt in range(2):
            try:
                self.ctx.seq_state_load(state, slot.seq_id)
            except NativeError:
                self.ctx.seq_rm(slot.seq_id)
                if attempt == 0 and self._drop_idle_kv(keep=slot):
                    continue
                logger.info("the cached prompt's KV does not fit now; computing the prompt instead")
                return False
            slot.cache[: len(tokens)] = tokens
            slot.n_cached = len(tokens)
            return True
        return False

    def _relieve_kv_pressure(self) -> None:
        """The KV cache is full. Idle slots give up their cells; else the newest prompt still
        prefilling goes back to the queue until a running job ends (its prompt fits the
        context, only not next to the others); else the longest generation ends ("length")."""
        if self._drop_idle_kv():
            return
        busy = [slot for slot in self.slots if slot.busy]
        prefilling = [slot for slot in busy if slot.prefilling]
        if prefilling and len(busy) > 1:
            victim = max(prefilling, key=lambda s: s.job.submitted_at if s.job is not None else 0.0)
            logger.info("KV cache full: a %d-token prompt waits for a running request to end", victim.n_prompt)
            job = victim.job
            assert job is not None
            self._release(victim)
            self._evict(victim)  # its computed part goes to the RAM cache, to be restored
            self._wait_for_room(job)
            return
        victim = max(busy, key=lambda s: s.n_cached)
        if victim.prefilling:  # alone and still no room: not expected, as the prompt fits n_ctx
            job = victim.job
            assert job is not None
            self._release(victim)
            self._evict(victim)
            job.done = True
            self._emit(job, BusyError("the KV cache is full; retry shortly", retry_after=1.0))
            return
        logger.warning("KV cache full: ending the longest request (%d tokens)", victim.n_cached)
        self._finish(victim, "length")

    def _release(self, slot: Slot) -> None:
        """Unbind a job that has produced nothing yet from its slot (it goes back, or fails)."""
        job = slot.job
        assert job is not None
        if slot.sampler is not None:
            slot.sampler.close()
            slot.sampler = None
        slot.job = None
        slot.next_token = -1
        slot.row = -1
        self._prompt_total -= slot.n_prompt
        self._cached_total -= slot.n_prompt_cached
        job.started_at = 0.0

    def _wait_for_room(self, job: Job) -> None:
        """Put `job` back at the head of the queue; nothing is admitted until a job ends."""
        with self._cond:
            self._pending.appendleft(job)
        self._await_room = True

    def _free_cells(self) -> int:
        return self.ctx.n_ctx - sum(slot.n_cached for slot in self.slots)

    # --- embeddings (run on the engine thread via call()) ---------------------------------

    def embed_tokens(self, inputs: list[list[int]], normalize: bool = True) -> list[np.ndarray]:
        """Pooled embeddings for many inputs, decoding as many sequences per batch as fit."""
        if not self.config.embeddings:
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
