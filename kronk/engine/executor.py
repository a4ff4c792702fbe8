"""The engine's executor: one decode step for all slots, sampling, and the events it emits.

A mixin of `Engine` (kronk.engine.loop), run only on the engine thread. Every step puts
one token per GENERATE slot into the batch, then fills the room left with prompt chunks
of PREFILL slots (chunked prefill: a long new prompt never freezes running streams).
After the decode each slot that produced logits samples in C (the llama.cpp sampler
chain), and its text goes through UTF-8 reassembly and the stop-string matcher before
it is queued for the job's sink; a step's events are delivered together just before
the next decode. The hot path reuses one batch and touches only the fields it needs.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from kronk.engine.draft import DraftModel
from kronk.engine.jobs import Job, Sink
from kronk.engine.logprobs import token_logprobs
from kronk.engine.ngram import lookup
from kronk.engine.slot import Run, Slot, SlotState
from kronk.engine.speculation import SlotSpec, SpecConfig, StepCost
from kronk.engine.types import Finish, FinishReason, GenerateRequest, TextDelta, Usage
from kronk.llama import Batch, KVCacheFullError

if TYPE_CHECKING:
    from collections.abc import Callable

    from kronk.llama import Context

logger = logging.getLogger("kronk.engine")

_GENERATE = SlotState.GENERATE
_PREFILL = SlotState.PREFILL


class Executor:
    """Batch building, decode, sampling and emitting (mixin: state lives on the Engine)."""

    ctx: Context
    n_ctx: int
    slots: list[Slot]
    batch: Batch
    _eog: np.ndarray
    _piece: Callable[[int], bytes]
    _outbox: list[tuple[Sink, Any]]
    _idle_kv: bool
    _await_room: bool
    _completion_total: int
    _steps: int
    _python_s: float
    _decode_s: float
    spec_config: SpecConfig
    drafter: DraftModel | None
    _spec_drafted: int
    _spec_accepted: int
    _step_cost: StepCost

    if TYPE_CHECKING:  # provided by the scheduler
        def _relieve_kv_pressure(self) -> None: ...

    def _busy(self) -> bool:
        return any(slot.run is not None for slot in self.slots)

    def _emit(self, job: Job, item: Any) -> None:
        self._outbox.append((job.sink, item))

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        for sink, item in outbox:
            try:
                sink(item)
            except Exception:  # a consumer's bug must not stop the other streams
                logger.exception("an event sink raised")

    def _step(self) -> None:
        t0 = time.perf_counter()
        batch = self.batch
        batch.clear()
        generating = [slot for slot in self.slots if slot.state is _GENERATE]
        others = len(generating) - 1  # the rows beside each slot's own, which a draft row competes with
        for slot in generating:
            # in the history now: prompt lookup and the draft model continue from it
            slot.cache[slot.n_cached] = slot.run.next_token  # type: ignore[union-attr]
        drafts = self._model_drafts(generating, others) if self.drafter is not None else None
        for slot in generating:
            run = slot.run
            slot.row = batch.add(run.next_token, slot.n_cached, slot.seq_id, True)  # type: ignore[union-attr]
            if run.spec is not None:  # type: ignore[union-attr]
                self._add_draft(slot, run, drafts, others)  # type: ignore[arg-type]
        # Chunked prefill: while streams run, each step takes at most one ubatch of prompt.
        budget = batch.room if not generating else max(0, min(batch.room, self.ctx.n_ubatch - batch.n_tokens))
        prefilled: list[tuple[Slot, int]] = []
        prefilling = [s for s in self.slots if s.state is _PREFILL]
        if prefilling:
            prefilling.sort(key=lambda s: s.run.job.submitted_at)  # type: ignore[union-attr]
        for slot in prefilling:
            if budget <= 0:
                break
            run = slot.run
            assert run is not None
            take = min(budget, run.n_prompt - run.prompt_pos)
            chunk = run.job.prompt[run.prompt_pos : run.prompt_pos + take]
            last = run.prompt_pos + take == run.n_prompt
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
            if self._drop_drafts(generating):
                return  # the next step tries again without draft rows
            self._relieve_kv_pressure()
            return
        t2 = time.perf_counter()
        if generating and not prefilled:
            self._step_cost.record(batch.n_tokens, t2 - t1)
        for slot in generating:
            slot.n_cached += 1  # its next token, written to the cache before the batch was built
        for slot, take in prefilled:
            run = slot.run
            assert run is not None
            slot.cache[slot.n_cached : slot.n_cached + take] = run.job.prompt[run.prompt_pos : run.prompt_pos + take]
            slot.n_cached += take
            run.prompt_pos += take
            if run.prompt_pos == run.n_prompt:
                slot.prefilled()
        now = time.perf_counter()
        for slot in self.slots:
            if slot.row >= 0 and slot.run is not None:
                spec = slot.run.spec
                if spec is not None and spec.draft is not None:
                    self._verify(slot, spec, now)
                else:
                    self._sample(slot, now)
                slot.row = -1
        self._steps += 1
        t3 = time.perf_counter()
        self._decode_s += t2 - t1
        self._python_s += (t1 - t0) + (t3 - t2)

    def _sample(self, slot: Slot, now: float) -> None:
        run = slot.run
        assert run is not None
        job = run.job
        logprob_entries = None
        if run.logprobs:
            logits = self.ctx.logits(slot.row)
        token = run.sampler.sample(self.ctx, slot.row)
        if run.logprobs:
            logprob_entries = [token_logprobs(logits, token, run.top_logprobs, self._piece)]
        if run.n_generated == 0:
            run.first_token_at = now
        run.n_generated += 1
        if not run.ignore_eos and self._eog[token]:
            self._finish(slot, "stop")
            return
        text = run.utf8.push(self._piece(token))
        emit, stopped = run.stop.push(text) if text else ("", False)
        if emit or logprob_entries:
            self._emit(job, TextDelta(emit, job.choice, logprob_entries))
        if stopped:
            self._finish(slot, "stop", flush=False)
        elif run.n_generated >= run.max_tokens or slot.n_cached + 1 >= self.n_ctx:
            self._finish(slot, "length")
        else:
            run.next_token = token

    # --- speculative decoding (policy: kronk.engine.speculation) -------------------------

    def _slot_spec(self, request: GenerateRequest) -> SlotSpec | None:
        """The speculation state a new request starts with, or None when it does not speculate."""
        config = self.spec_config
        wanted = request.speculation
        kind = config.type if wanted is None else wanted.type
        draft_max = config.draft_max if wanted is None or wanted.draft_max is None else wanted.draft_max
        if kind == "off" or draft_max <= 0 or request.media is not None:
            return None
        return SlotSpec(draft_max, config.draft_min, kind)

    def _draft_room(self, slot: Slot, run: Run) -> int:
        """Draft tokens the slot may verify this step: what the request may still generate beyond
        the next token, capped by the context's cells and the batch."""
        return min(run.max_tokens - run.n_generated - 1, self.n_ctx - slot.n_cached - 3, self.batch.room - 1)

    def _model_drafts(self, generating: list[Slot], others: int) -> dict[int, np.ndarray]:
        """The draft model's proposals for every generating slot that drafts with it, at once.

        A drafted token costs a draft-model step besides its verify row, so it is priced as both."""
        row_cost = self._step_cost.draft_ratio()
        wanted = []
        for slot in generating:
            run = slot.run
            assert run is not None
            spec = run.spec
            if spec is None or spec.kind != "draft" or spec.cooling():
                continue
            k = spec.length(self._draft_room(slot, run), others, row_cost)
            if k:
                wanted.append((slot.seq_id, slot.cache, slot.n_cached + 1, k))
        if not wanted:
            return {}
        assert self.drafter is not None
        t0 = time.perf_counter()
        try:
            drafts = self.drafter.propose(wanted)
        except KVCacheFullError:
            self.drafter.reset()  # its cache is rebuilt from the slots' tokens next time
            return {}
        self._step_cost.record_draft(max(k for *_, k in wanted), time.perf_counter() - t0)
        return drafts

    def _add_draft(self, slot: Slot, run: Run, drafts: dict[int, np.ndarray] | None, others: int) -> None:
        """Put the slot's draft tokens into the batch after its next token, logits on each row."""
        spec = run.spec
        assert spec is not None
        if spec.kind == "draft":
            draft = drafts.get(slot.seq_id) if drafts else None
        else:
            n = slot.n_cached
            start, matched = lookup(slot.cache, n + 1)
            # a draft no longer than the match behind it: a short match is weak evidence. The
            # cool-down counts only steps that found a match (a step with nothing to propose
            # made no choice), so it is checked after the lookup.
            if not matched or spec.cooling():
                return
            k = spec.length(min(matched, n + 1 - start, self._draft_room(slot, run)), others, self._step_cost.ratio)
            # a copy: the cells it came from may be overwritten by the verification
            draft = slot.cache[start : start + k].copy() if k else None
        if draft is None or len(draft) < spec.draft_min:
            return
        batch = self.batch
        last = batch.add_sequence(draft, slot.n_cached + 1, slot.seq_id, True)
        batch.logits[last + 1 - len(draft) : last] = 1
        spec.draft = draft

    def _drop_drafts(self, generating: list[Slot]) -> bool:
        """The KV cache had no room for this step's draft rows: forget them and draft less."""
        dropped = False
        for slot in generating:
            spec = slot.run.spec if slot.run is not None else None
            if spec is not None and spec.draft is not None:
                spec.draft = None
                spec.cooldown = max(spec.cooldown, 1)
                dropped = True
        return dropped

    def _verify(self, slot: Slot, spec: SlotSpec, now: float) -> None:
        """Sample the slot's rows in order with its own chain while each sample equals the draft
        (the module docstring of kronk.engine.speculation says why this is exact), then remove
        the cells of the draft tokens that were not accepted."""
        draft = spec.draft
        assert draft is not None
        spec.draft = None
        k = len(draft)
        base = slot.n_cached  # the cells base .. base+k-1 hold the draft
        slot.cache[base : base + k] = draft
        row = slot.row
        accepted = 0
        for i in range(k + 1):
            slot.row = row + i
            self._sample(slot, now)
            run = slot.run
            if run is None or i == k or run.next_token != draft[i]:
                break
            slot.n_cached += 1
            accepted += 1
        if slot.n_cached < base + k:
            self.ctx.seq_rm(slot.seq_id, slot.n_cached, -1)
        spec.observe(k, accepted)
        self._spec_drafted += k
        self._spec_accepted += accepted

    def _finish(self, slot: Slot, reason: FinishReason, flush: bool = True) -> None:
        """End the slot's request: emit its held text and its Finish; the slot keeps its KV."""
        run = slot.unbind(time.perf_counter())
        job = run.job
        if flush and reason != "cancelled":
            tail = run.stop.push(run.utf8.flush())[0] + run.stop.flush()
            if tail:
                self._emit(job, TextDelta(tail, job.choice))
        first = run.first_token_at
        elapsed = (slot.last_used - first) if first else 0.0
        usage = Usage(
            prompt_tokens=run.n_prompt,
            completion_tokens=run.n_generated,
            cached_tokens=run.n_prompt_cached,
            time_to_first_token_ms=((first - job.submitted_at) * 1000.0) if first else 0.0,
            tokens_per_second=(run.n_generated - 1) / elapsed if elapsed > 0 and run.n_generated > 1 else 0.0,
            queue_wait_ms=(job.started_at - job.submitted_at) * 1000.0 if job.started_at else 0.0,
        )
        self._completion_total += run.n_generated
        self._idle_kv = True
        self._await_room = False
        job.done = True
        self._emit(job, Finish(reason, usage, job.choice, run.stop.matched if reason == "stop" else None))
