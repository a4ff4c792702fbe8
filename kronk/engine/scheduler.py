"""The engine's scheduler: which job gets which slot, what KV it reuses, and what gives way
when the KV cache runs out of cells.

A mixin of `Engine` (kronk.engine.loop), run only on the engine thread. It decides;
the executor (kronk.engine.executor) builds batches, decodes and samples. Prefix reuse:
the free slot sharing the longest prefix with the new prompt is taken, else the RAM prompt
cache is asked for a longer one; a cache hit counts only once its KV is restored into
the slot. KV pressure: idle slots give up their cells first (parked in the RAM cache),
then the newest prefilling prompt waits in the queue, then the longest generation ends.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from kronk.engine.cache import PromptCache, common_prefix
from kronk.engine.jobs import Job
from kronk.engine.slot import Run, Slot, SlotState
from kronk.errors import BusyError, KronkError, NativeError
from kronk.llama import SamplerChain

if TYPE_CHECKING:
    from kronk.engine.speculation import SlotSpec
    from kronk.engine.types import FinishReason, GenerateRequest
    from kronk.llama import Context, Model

logger = logging.getLogger("kronk.engine")

MIN_PREFIX_REUSE = 16
"""Shared prompt tokens below which a slot is chosen by emptiness and age, not by prefix."""
MIN_CACHE_GAIN = 16
"""Tokens a RAM-cached prefix must add over the slot's own KV to be worth swapping it in."""


class Scheduler:
    """Admission, prefix reuse and KV-pressure handling (mixin: state lives on the Engine)."""

    model: Model
    ctx: Context
    n_ctx: int
    slots: list[Slot]
    prompt_cache: PromptCache
    _cond: threading.Condition
    _pending: deque[Job]
    _eog_ids: np.ndarray
    _idle_kv: bool
    _await_room: bool
    _prompt_total: int
    _cached_total: int

    if TYPE_CHECKING:  # provided by the executor (stubs here would shadow it in the MRO)
        def _emit(self, job: Job, item: Any) -> None: ...
        def _flush(self) -> None: ...
        def _finish(self, slot: Slot, reason: FinishReason, flush: bool = True) -> None: ...
        def _sample(self, slot: Slot, now: float) -> None: ...
        def _busy(self) -> bool: ...
        def _slot_spec(self, request: GenerateRequest) -> SlotSpec | None: ...

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
        if entry is not None and cached_len > best_len + MIN_CACHE_GAIN:
            self._evict(slot)
            best_len = 0
            if self._restore(slot, entry.tokens, entry.state):
                self.prompt_cache.used(entry)
                best_len = cached_len
        keep = min(best_len, len(prompt) - 1)
        if slot.n_cached - keep >= self.prompt_cache.min_tokens and keep < slot.n_cached // 2:
            self._save_slot_state(slot)
        if not self.ctx.seq_rm(slot.seq_id, keep, -1):
            self.ctx.seq_rm(slot.seq_id)
            keep = 0
        slot.hold(keep)
        self._start(slot, job, keep)
        if slot.run is not None and slot.run.max_tokens == 0:
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
        self._evict(slot)
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
        slot.hold(n_past)
        run = self._start(slot, job, 0)
        if run.max_tokens == 0:
            self._finish(slot, "length")
            return
        run.prompt_pos = run.n_prompt
        slot.prefilled()
        slot.row = -1  # the helper's decode left the last prompt token's logits last
        self._sample(slot, time.perf_counter())

    def _start(self, slot: Slot, job: Job, keep: int) -> Run:
        """Bind `job` to `slot`, whose first `keep` prompt tokens are already in the KV cache."""
        prompt = job.prompt
        request = job.request
        sampling = request.sampling
        if request.ignore_eos:
            # as llama.cpp does: end-of-generation tokens can never be sampled
            bias = dict(sampling.logit_bias)
            bias.update({int(t): -math.inf for t in self._eog_ids})
            sampling = dataclasses.replace(sampling, logit_bias=bias)
        sampler = SamplerChain.from_params(self.model, sampling)
        # Penalty samplers need the prompt history, as llama.cpp's tools feed it.
        if request.media is None and sampler.names and any(n in ("penalties", "dry") for n in sampler.names):
            for token in prompt.tolist():
                sampler.accept_prompt(token)
        limit = self.n_ctx - len(prompt)
        max_tokens = limit if request.max_tokens is None else min(request.max_tokens, limit)
        run = Run(job, sampler, keep, max_tokens, self._slot_spec(request))
        slot.bind(run)
        job.started_at = time.perf_counter()
        self._prompt_total += len(prompt)
        self._cached_total += keep
        return run

    def _release(self, slot: Slot) -> Job:
        """Unbind a job that has produced nothing yet from its slot (it goes back, or fails)."""
        run = slot.unbind(time.perf_counter())
        self._prompt_total -= run.n_prompt
        self._cached_total -= run.n_prompt_cached
        run.job.started_at = 0.0
        return run.job

    def _wait_for_room(self, job: Job) -> None:
        """Put `job` back at the head of the queue; nothing is admitted until a job ends."""
        with self._cond:
            self._pending.appendleft(job)
        self._await_room = True

    # --- idle KV and the RAM prompt cache -----------------------------------------------------

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

    def _drop_idle_kv(self, keep: Slot | None = None) -> bool:
        """Move idle slots' KV (but `keep`'s) to the RAM prompt cache and free their cells;
        whether any cells were freed."""
        idle = [slot for slot in self.slots if slot.state is SlotState.CACHED and slot is not keep]
        for slot in idle:
            self._evict(slot)
        return bool(idle)

    def _evict(self, slot: Slot) -> None:
        """Save an idle slot's KV to the RAM prompt cache (when worth it) and free its cells."""
        self._save_slot_state(slot)
        self.ctx.seq_rm(slot.seq_id)
        slot.hold(0)

    def _restore(self, slot: Slot, tokens: np.ndarray, state: bytes) -> bool:
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
            slot.filled(tokens)
            return True
        return False

    def _free_cells(self) -> int:
        return self.ctx.n_ctx - sum(slot.n_cached for slot in self.slots)

    # --- KV pressure --------------------------------------------------------------------

    def _relieve_kv_pressure(self) -> None:
        """The KV cache is full. Idle slots give up their cells; else the newest prompt still
        prefilling goes back to the queue until a running job ends (its prompt fits the
        context, only not next to the others); else the longest generation ends ("length")."""
        if self._drop_idle_kv():
            return
        busy = [slot for slot in self.slots if slot.busy]
        prefilling = [slot for slot in busy if slot.state is SlotState.PREFILL]
        if prefilling and len(busy) > 1:
            victim = max(prefilling, key=lambda s: s.run.job.submitted_at if s.run is not None else 0.0)
            logger.info("KV cache full: a %d-token prompt waits for a running request to end",
                        victim.run.n_prompt if victim.run is not None else 0)
            job = self._release(victim)
            self._evict(victim)  # its computed part goes to the RAM cache, to be restored
            self._wait_for_room(job)
            return
        victim = max(busy, key=lambda s: s.n_cached)
        if victim.state is SlotState.PREFILL:  # alone and still no room: not expected, as the prompt fits n_ctx
            job = self._release(victim)
            self._evict(victim)
            job.done = True
            self._emit(job, BusyError("the KV cache is full; retry shortly", retry_after=1.0))
            return
        logger.warning("KV cache full: ending the longest request (%d tokens)", victim.n_cached)
        self._finish(victim, "length")
