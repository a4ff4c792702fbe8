"""Draft-model drafting: a small model with the target's vocabulary proposes greedy continuations.

The draft model has its own context with one sequence per slot (same seq ids), driven on the
engine thread just before the target's decode. Each sequence's draft KV mirrors a prefix of
its slot's tokens: at every drafting step the first cell where the two differ (a rejected
draft, a new prompt in the slot) is where the draft KV is cut, the missing tokens are decoded
(all slots in one batch), then k greedy tokens are generated one decode per token, again all
slots together. The argmax is taken over the draft's logits with numpy (C), no sampler state.
"""

from __future__ import annotations

import numpy as np

from kronk.errors import ConfigError
from kronk.llama import Batch, Context, Model
from kronk.llama.context import ContextParams


def check_vocabulary(target: Model, draft: Model) -> None:
    """The draft must tokenize exactly as the target: same size, same pieces, same special tokens."""
    tv, dv = target.vocab, draft.vocab
    if tv.n_tokens != dv.n_tokens:
        raise ConfigError(f"the draft model's vocabulary has {dv.n_tokens} tokens, the target's {tv.n_tokens}: "
                          "a draft model must share the target's vocabulary")
    if (tv.bos, tv.eos) != (dv.bos, dv.eos):
        raise ConfigError("the draft model's BOS/EOS tokens differ from the target's")
    for token in range(tv.n_tokens):
        if tv.piece(token, special=True) != dv.piece(token, special=True):
            raise ConfigError(f"the draft model's vocabulary differs from the target's at token {token}")


class DraftModel:
    """The draft model's context and per-sequence bookkeeping (engine thread only)."""

    def __init__(self, target: Model, draft: Model, params: ContextParams) -> None:
        check_vocabulary(target, draft)
        self.model = draft
        self.ctx = Context(draft, params)
        self.batch = Batch(self.ctx.n_batch, 1)
        n_ctx = self.ctx.n_ctx_seq
        self.tokens = [np.zeros(n_ctx + 1, dtype=np.int32) for _ in range(self.ctx.n_seq_max)]
        self.n = [0] * self.ctx.n_seq_max
        """Cells of each draft sequence (the first n tokens of `tokens`)."""

    def close(self) -> None:
        self.ctx.close()

    def reset(self) -> None:
        """Forget every sequence (after its KV cache filled up): the next drafts rebuild them."""
        self.ctx.clear()
        self.n = [0] * len(self.n)

    def propose(self, wanted: list[tuple[int, np.ndarray, int, int]]) -> dict[int, np.ndarray]:
        """Greedy drafts: for each (seq_id, history, n, k), up to k tokens continuing history[:n]."""
        ctx, batch = self.ctx, self.batch
        rows: dict[int, int] = {}
        pending: list[tuple[int, np.ndarray, int]] = []
        for seq, history, n, _k in wanted:
            have = min(self.n[seq], n - 1)  # the last token is always decoded, for its logits
            mine = self.tokens[seq]
            if have:
                differ = np.flatnonzero(mine[:have] != history[:have])
                if len(differ):
                    have = int(differ[0])
            if have < self.n[seq]:
                ctx.seq_rm(seq, have, -1)
                self.n[seq] = have
            pending.append((seq, history, n))
        # catch up: decode each sequence's missing tokens, in as many batches as they need
        while pending:
            batch.clear()
            left = []
            for seq, history, n in pending:
                start = self.n[seq]
                take = min(n - start, batch.room)
                if take <= 0:
                    left.append((seq, history, n))
                    continue
                last = start + take == n
                row = batch.add_sequence(history[start : start + take], start, seq, last)
                if last:
                    rows[seq] = row
                self.tokens[seq][start : start + take] = history[start : start + take]
                self.n[seq] = start + take
                if not last:
                    left.append((seq, history, n))
            ctx.decode(batch)
            pending = left
        # generate: one decode per draft token, all sequences together
        drafts = {seq: np.empty(k, dtype=np.int32) for seq, _, _, k in wanted}
        active = [(seq, k) for seq, _, _, k in wanted if k > 0]
        for i in range(max((k for _, k in active), default=0)):
            for seq, _k in active:
                drafts[seq][i] = int(np.argmax(ctx.logits(rows[seq])))
            active = [(seq, k) for seq, k in active if k > i + 1]
            if not active:
                break
            batch.clear()
            for seq, _k in active:
                pos = self.n[seq]
                rows[seq] = batch.add(int(drafts[seq][i]), pos, seq, True)
                self.tokens[seq][pos] = drafts[seq][i]
                self.n[seq] = pos + 1
            ctx.decode(batch)
        return drafts
