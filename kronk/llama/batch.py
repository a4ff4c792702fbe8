"""`Batch`: a reusable llama_batch whose buffers are numpy arrays.

The engine fills it once per decode step with vectorised writes (no per-token C
calls, no allocation): `token`, `pos`, `seq` (seq id per token), `logits` (which
rows produce outputs). Each token belongs to one sequence (`n_seq_id` = 1), which is
all continuous batching needs; `seq_ids` of a token can be widened for shared prompts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kronk._native.loader import libraries
from kronk.errors import InvalidRequestError


class Batch:
    def __init__(self, capacity: int, n_seq_max: int = 1) -> None:
        if capacity <= 0:
            raise InvalidRequestError("batch capacity must be positive")
        libs = libraries()
        ffi = libs.ffi
        self.capacity = capacity
        self.n_seq_max = max(1, n_seq_max)
        self.token = np.zeros(capacity, dtype=np.int32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.n_seq_id = np.ones(capacity, dtype=np.int32)
        self._seq_storage = np.zeros((capacity, self.n_seq_max), dtype=np.int32)
        self.seq = self._seq_storage[:, 0]
        """Primary sequence id of each token (a view into the per-token seq id rows)."""
        self.logits = np.zeros(capacity, dtype=np.int8)
        self._seq_ptrs = ffi.new("llama_seq_id *[]", capacity)
        base = ffi.cast("llama_seq_id *", ffi.from_buffer(self._seq_storage))
        for i in range(capacity):
            self._seq_ptrs[i] = base + i * self.n_seq_max
        self._struct = ffi.new("llama_batch *")
        self._struct.token = ffi.cast("llama_token *", ffi.from_buffer(self.token))
        self._struct.embd = ffi.NULL
        self._struct.pos = ffi.cast("llama_pos *", ffi.from_buffer(self.pos))
        self._struct.n_seq_id = ffi.cast("int32_t *", ffi.from_buffer(self.n_seq_id))
        self._struct.seq_id = self._seq_ptrs
        self._struct.logits = ffi.cast("int8_t *", ffi.from_buffer(self.logits))
        self.n_tokens = 0

    def clear(self) -> None:
        self.n_tokens = 0

    @property
    def room(self) -> int:
        return self.capacity - self.n_tokens

    def add(self, token: int, pos: int, seq_id: int, logits: bool = False) -> int:
        """Append one token; returns its row (the index for logits/sampling)."""
        i = self.n_tokens
        if i >= self.capacity:
            raise InvalidRequestError("batch is full")
        self.token[i] = token
        self.pos[i] = pos
        self.seq[i] = seq_id
        self.n_seq_id[i] = 1
        self.logits[i] = logits
        self.n_tokens = i + 1
        return i

    def add_sequence(self, tokens: np.ndarray | list[int], pos0: int, seq_id: int, logits_last: bool) -> int:
        """Append a run of tokens of one sequence at positions pos0.. ; returns the last row."""
        n = len(tokens)
        i = self.n_tokens
        if n == 0:
            raise InvalidRequestError("empty token run")
        if i + n > self.capacity:
            raise InvalidRequestError("batch is full")
        end = i + n
        self.token[i:end] = tokens
        self.pos[i:end] = np.arange(pos0, pos0 + n, dtype=np.int32)
        self.seq[i:end] = seq_id
        self.n_seq_id[i:end] = 1
        self.logits[i:end] = 0
        if logits_last:
            self.logits[end - 1] = 1
        self.n_tokens = end
        return end - 1

    def as_struct(self) -> Any:
        """The llama_batch value for llama_decode (valid while this Batch lives)."""
        self._struct.n_tokens = self.n_tokens
        return self._struct[0]
