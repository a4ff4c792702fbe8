"""`Context`: one llama_context — KV cache, decode, logits/embeddings, per-sequence state.

A context is used by one thread at a time (the engine's decode thread); C calls
release the GIL, so other Python threads and the asyncio loop keep running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kronk.errors import ContextOverflowError, InvalidRequestError, KronkError, NativeError
from kronk.llama.batch import Batch
from kronk.llama.model import Model
from kronk.llama.owner import NativeOwner

CACHE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "iq4_nl": 20, "bf16": 30}
POOLING = {"unspecified": -1, "none": 0, "mean": 1, "cls": 2, "last": 3, "rank": 4}
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}


class DecodeError(NativeError, code="decode_failed"):
    """llama_decode failed; `code` is its return value."""

    def __init__(self, code: int) -> None:
        self.code = code
        reasons = {1: "no KV cache slot for the batch", 2: "aborted"}
        super().__init__(f"llama_decode failed ({code}: {reasons.get(code, 'error')})")

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        error = cls(-1)
        error.args = (message,)
        return error


class KVCacheFullError(DecodeError, ContextOverflowError, status=503, code="kv_cache_full",
                       openai_type="server_error", anthropic_type="overloaded_error"):
    """No room in the KV cache for the batch (code 1): the server is full for now, retry."""

    def __init__(self, code: int = 1) -> None:
        DecodeError.__init__(self, code)
        self.param = None


@dataclass(slots=True)
class ContextParams:
    n_ctx: int = 4096
    n_batch: int = 2048
    n_ubatch: int = 512
    n_seq_max: int = 1
    n_threads: int = 0
    n_threads_batch: int = 0
    embeddings: bool = False
    pooling: str = "unspecified"
    flash_attn: str = "auto"
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    kv_unified: bool = True
    """One KV buffer shared by all sequences (needed when sequences have unequal lengths)."""
    offload_kqv: bool = True
    swa_full: bool = True
    no_perf: bool = True


def _choice(table: dict[str, int], value: str, what: str) -> int:
    try:
        return table[value.lower()]
    except KeyError:
        raise InvalidRequestError(f"unknown {what} {value!r} (one of {', '.join(table)})") from None


class Context(NativeOwner):
    _what = "context"

    def __init__(self, model: Model, params: ContextParams | None = None, **overrides: Any) -> None:
        import os

        params = params or ContextParams()
        for key, value in overrides.items():
            if not hasattr(params, key):
                raise TypeError(f"unknown context parameter {key!r}")
            setattr(params, key, value)
        self.model = model
        self._libs = model._libs
        ffi, lib = self._libs.ffi, self._libs.llama
        threads = params.n_threads or os.cpu_count() or 1
        c = lib.llama_context_default_params()
        c.n_ctx = params.n_ctx
        c.n_batch = params.n_batch
        c.n_ubatch = min(params.n_ubatch, params.n_batch) if params.n_batch else params.n_ubatch
        c.n_seq_max = params.n_seq_max
        c.n_threads = threads
        c.n_threads_batch = params.n_threads_batch or threads
        c.embeddings = params.embeddings
        c.pooling_type = _choice(POOLING, params.pooling, "pooling type")
        c.flash_attn_type = _choice(FLASH_ATTN, params.flash_attn, "flash attention mode")
        c.type_k = _choice(CACHE_TYPES, params.cache_type_k, "KV cache type")
        c.type_v = _choice(CACHE_TYPES, params.cache_type_v, "KV cache type")
        c.kv_unified = params.kv_unified
        c.offload_kqv = params.offload_kqv
        c.swa_full = params.swa_full
        c.no_perf = params.no_perf
        handle = lib.llama_init_from_model(model.handle, c)
        if handle == ffi.NULL:
            raise NativeError("llama.cpp could not create the context (see the llama.cpp log; too large n_ctx?)")
        self._own(handle, lib.llama_free)
        self.params = params
        self.n_ctx = int(lib.llama_n_ctx(handle))
        self.n_ctx_seq = int(lib.llama_n_ctx_seq(handle))
        self.n_batch = int(lib.llama_n_batch(handle))
        self.n_ubatch = int(lib.llama_n_ubatch(handle))
        self.n_seq_max = int(lib.llama_n_seq_max(handle))
        self.n_vocab = model.vocab.n_tokens
        self._memory = lib.llama_get_memory(handle)
        self._decode = lib.llama_decode
        self._encode = lib.llama_encode
        self._logits_ith = lib.llama_get_logits_ith
        self._is_encoder_only = model.has_encoder and not model.has_decoder

    # --- lifecycle --------------------------------------------------------------


    # --- decoding ---------------------------------------------------------------

    def decode(self, batch: Batch) -> None:
        """Evaluate a batch (encoder-only models are encoded). Raises KVCacheFullError / DecodeError."""
        if batch.n_tokens == 0:
            return
        code = (self._encode if self._is_encoder_only else self._decode)(self.handle, batch.as_struct())
        if code != 0:
            if code == 1:
                raise KVCacheFullError()
            raise DecodeError(int(code))

    def set_threads(self, n_threads: int, n_threads_batch: int) -> None:
        self._libs.llama.llama_set_n_threads(self.handle, n_threads, n_threads_batch)

    def set_embeddings(self, enabled: bool) -> None:
        self._libs.llama.llama_set_embeddings(self.handle, enabled)

    @property
    def pooling_type(self) -> int:
        return int(self._libs.llama.llama_pooling_type(self.handle))

    def logits(self, row: int) -> np.ndarray:
        """Zero-copy float32 view of the logits of batch row `row` (valid until the next decode)."""
        ptr = self._logits_ith(self.handle, row)
        ffi = self._libs.ffi
        if ptr == ffi.NULL:
            raise NativeError(f"no logits for batch row {row}")
        return np.frombuffer(ffi.buffer(ptr, 4 * self.n_vocab), dtype=np.float32)

    def embeddings_seq(self, seq_id: int) -> np.ndarray:
        """Pooled embedding of a sequence (a copy). Needs embeddings on and pooling != none."""
        ffi, lib = self._libs.ffi, self._libs.llama
        ptr = lib.llama_get_embeddings_seq(self.handle, seq_id)
        if ptr == ffi.NULL:
            raise NativeError(f"no pooled embedding for sequence {seq_id}")
        n = self.model.n_cls_out if self.pooling_type == POOLING["rank"] else self.model.n_embd_out
        return np.frombuffer(ffi.buffer(ptr, 4 * max(n, 1)), dtype=np.float32).copy()

    def embeddings_row(self, row: int) -> np.ndarray:
        """Per-token embedding of a batch row (pooling none), a copy."""
        ffi, lib = self._libs.ffi, self._libs.llama
        ptr = lib.llama_get_embeddings_ith(self.handle, row)
        if ptr == ffi.NULL:
            raise NativeError(f"no embedding for batch row {row}")
        return np.frombuffer(ffi.buffer(ptr, 4 * self.model.n_embd_out), dtype=np.float32).copy()

    # --- KV memory per sequence -----------------------------------------------

    def clear(self) -> None:
        self._libs.llama.llama_memory_clear(self._memory, True)

    def seq_rm(self, seq_id: int, p0: int = -1, p1: int = -1) -> bool:
        """Remove positions [p0, p1) of a sequence (-1 = open bound). False if not possible."""
        return bool(self._libs.llama.llama_memory_seq_rm(self._memory, seq_id, p0, p1))

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        self._libs.llama.llama_memory_seq_cp(self._memory, src, dst, p0, p1)

    def seq_keep(self, seq_id: int) -> None:
        self._libs.llama.llama_memory_seq_keep(self._memory, seq_id)

    def seq_shift(self, seq_id: int, p0: int, p1: int, delta: int) -> None:
        """Add `delta` to the positions [p0, p1) of a sequence (context shifting)."""
        self._libs.llama.llama_memory_seq_add(self._memory, seq_id, p0, p1, delta)

    def seq_div(self, seq_id: int, p0: int, p1: int, divisor: int) -> None:
        self._libs.llama.llama_memory_seq_div(self._memory, seq_id, p0, p1, divisor)

    def seq_pos_min(self, seq_id: int) -> int:
        return int(self._libs.llama.llama_memory_seq_pos_min(self._memory, seq_id))

    def seq_pos_max(self, seq_id: int) -> int:
        """Largest position held for the sequence, -1 if it is empty."""
        return int(self._libs.llama.llama_memory_seq_pos_max(self._memory, seq_id))

    @property
    def can_shift(self) -> bool:
        return bool(self._libs.llama.llama_memory_can_shift(self._memory))

    # --- state ------------------------------------------------------------------

    def seq_state_save(self, seq_id: int) -> bytes:
        """The KV state of one sequence as bytes (restorable into any sequence)."""
        ffi, lib = self._libs.ffi, self._libs.llama
        size = lib.llama_state_seq_get_size(self.handle, seq_id)
        buf = ffi.new("uint8_t[]", size)
        written = lib.llama_state_seq_get_data(self.handle, buf, size, seq_id)
        return ffi.unpack(ffi.cast("char *", buf), written)

    def seq_state_load(self, data: bytes, seq_id: int) -> None:
        """Replace the KV state of `seq_id` with saved bytes."""
        lib = self._libs.llama
        read = lib.llama_state_seq_set_data(self.handle, data, len(data), seq_id)
        if read == 0:
            raise NativeError(f"could not restore the state of sequence {seq_id}")

    # --- performance ------------------------------------------------------------

    def perf(self) -> dict[str, float]:
        data = self._libs.llama.llama_perf_context(self.handle)
        return {
            "load_ms": data.t_load_ms,
            "prompt_eval_ms": data.t_p_eval_ms,
            "eval_ms": data.t_eval_ms,
            "prompt_tokens": data.n_p_eval,
            "eval_tokens": data.n_eval,
        }
