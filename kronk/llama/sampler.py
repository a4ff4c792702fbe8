"""`SamplerChain`: llama.cpp's sampler chain, built from `SamplingParams`.

Sampling stays in C: one `llama_sampler_sample` call per token applies every sampler
and accepts the token (penalties and mirostat state advance inside). Every built-in
llama.cpp sampler has a builder method; `from_params` assembles them in the order
llama.cpp's own tools use.

A grammar is kept beside the chain, not in it, as llama.cpp's tools do:
- Speed: checking every token of the vocabulary against a large grammar (a request
  with two dozen tools) costs far more than the model's decode. The chain samples first
  and the grammar checks only that token; the whole vocabulary is masked only when the
  token breaks the grammar. Greedy output is the same either way.
- Safety: prompt tokens fed to the history samplers (penalties, DRY) must not reach the
  grammar, whose C++ code aborts the process on a token it cannot accept.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from kronk._native.loader import libraries
from kronk.errors import GrammarError, InvalidRequestError, KronkError
from kronk.llama.model import Model
from kronk.llama.owner import NativeOwner
from kronk.llama.sampling_params import SamplingParams

DEFAULT_SEED = 0xFFFFFFFF
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class SamplerChain(NativeOwner):
    _what = "sampler chain"

    def _closed_error(self) -> KronkError:
        return InvalidRequestError("sampler chain is closed")

    def __init__(self, model: Model, *, no_perf: bool = True) -> None:
        libs = libraries()
        self._ffi, self._lib = libs.ffi, libs.llama
        self.model = model
        params = self._lib.llama_sampler_chain_default_params()
        params.no_perf = no_perf
        self._own(self._lib.llama_sampler_chain_init(params), self._lib.llama_sampler_free)
        self._keepalive: list[Any] = []
        self._sample = self._lib.llama_sampler_sample
        self._candidates: np.ndarray | None = None
        self._token_ids: np.ndarray | None = None
        self._candidate_array: Any = None
        self._grammar: Any = None
        """The grammar sampler, owned apart from the chain (see the module docstring)."""
        self.names: list[str] = []

    def close(self) -> None:
        grammar, self._grammar = self._grammar, None
        if grammar is not None:
            self._lib.llama_sampler_free(grammar)
        super().close()


    def _add(self, sampler: Any, name: str) -> SamplerChain:
        if sampler == self._ffi.NULL:
            raise InvalidRequestError(f"could not create the {name} sampler")
        self._lib.llama_sampler_chain_add(self.handle, sampler)  # the chain takes ownership
        self.names.append(name)
        return self

    # --- builders (one per llama.cpp sampler) ------------------------------------

    def greedy(self) -> SamplerChain:
        return self._add(self._lib.llama_sampler_init_greedy(), "greedy")

    def dist(self, seed: int | None = None) -> SamplerChain:
        return self._add(self._lib.llama_sampler_init_dist(_seed(seed)), "dist")

    def top_k(self, k: int) -> SamplerChain:
        return self._add(self._lib.llama_sampler_init_top_k(k), "top_k")

    def top_p(self, p: float, min_keep: int = 1) -> SamplerChain:
        return self._add(self._lib.llama_sampler_init_top_p(p, min_keep), "top_p")

    def min_p(self, p: float, min_keep: int = 1) -> SamplerChain:
        return self._add(self._lib.llama_sampler_init_min_p(p, min_keep), "min_p")

    def typical(self, p: float, min_keep: int = 1) -> SamplerChain:
        return self._add(self._lib.llama_sampler_init_typical(p, min_keep), "typical")

    def temperature(self, t: float, dynatemp_range: float = 0.0, dynatemp_exponent: float = 1.0) -> SamplerChain:
        if dynatemp_range > 0:
            return self._add(self._lib.llama_sampler_init_temp_ext(t, dynatemp_range, dynatemp_exponent), "temp_ext")
        return self._add(self._lib.llama_sampler_init_temp(t), "temp")

    def xtc(self, probability: float, threshold: float, min_keep: int = 1, seed: int | None = None) -> SamplerChain:
        return self._add(self._lib.llama_sampler_init_xtc(probability, threshold, min_keep, _seed(seed)), "xtc")

    def top_n_sigma(self, n: float) -> SamplerChain:
        return self._add(self._lib.llama_sampler_init_top_n_sigma(n), "top_n_sigma")

    def mirostat(self, tau: float, eta: float, m: int = 100, seed: int | None = None) -> SamplerChain:
        n_vocab = self.model.vocab.n_tokens
        return self._add(self._lib.llama_sampler_init_mirostat(n_vocab, _seed(seed), tau, eta, m), "mirostat")

    def mirostat_v2(self, tau: float, eta: float, seed: int | None = None) -> SamplerChain:
        return self._add(self._lib.llama_sampler_init_mirostat_v2(_seed(seed), tau, eta), "mirostat_v2")

    def penalties(self, last_n: int, repeat: float, frequency: float, presence: float) -> SamplerChain:
        n_vocab = self.model.vocab.n_tokens
        return self._add(
            self._lib.llama_sampler_init_penalties(n_vocab, last_n, repeat, frequency, presence), "penalties"
        )

    def dry(
        self, multiplier: float, base: float, allowed_length: int, last_n: int, breakers: list[str]
    ) -> SamplerChain:
        c_breakers = [self._ffi.new("char[]", b.encode()) for b in breakers]
        array = self._ffi.new("const char *[]", c_breakers) if c_breakers else self._ffi.NULL
        sampler = self._lib.llama_sampler_init_dry(
            self.model.vocab.handle, multiplier, base, allowed_length, last_n, array, len(c_breakers)
        )
        return self._add(sampler, "dry")

    def logit_bias(self, bias: dict[int, float]) -> SamplerChain:
        n_vocab = self.model.vocab.n_tokens
        items = self._ffi.new("llama_logit_bias[]", len(bias))
        for i, (token, value) in enumerate(bias.items()):
            if not 0 <= int(token) < n_vocab:
                raise InvalidRequestError(f"logit_bias token {token} is outside the vocabulary", param="logit_bias")
            items[i].token = int(token)
            items[i].bias = float(value)
        return self._add(self._lib.llama_sampler_init_logit_bias(n_vocab, len(bias), items), "logit_bias")

    def grammar(self, gbnf: str, root: str = "root") -> SamplerChain:
        sampler = self._lib.llama_sampler_init_grammar(self.model.vocab.handle, gbnf.encode(), root.encode())
        if sampler == self._ffi.NULL:
            raise GrammarError("the grammar could not be parsed (GBNF syntax error or unknown root)", param="grammar")
        return self._set_grammar(sampler, "grammar")

    def grammar_lazy(
        self, gbnf: str, patterns: list[str], trigger_tokens: list[int] | None = None, root: str = "root"
    ) -> SamplerChain:
        """A grammar that only constrains output once it matches one of `patterns` (regexes)."""
        c_patterns = [self._ffi.new("char[]", p.encode()) for p in patterns]
        p_array = self._ffi.new("const char *[]", c_patterns) if c_patterns else self._ffi.NULL
        tokens = trigger_tokens or []
        t_array = self._ffi.new("llama_token[]", tokens) if tokens else self._ffi.NULL
        sampler = self._lib.llama_sampler_init_grammar_lazy_patterns(
            self.model.vocab.handle, gbnf.encode(), root.encode(), p_array, len(c_patterns), t_array, len(tokens)
        )
        if sampler == self._ffi.NULL:
            raise GrammarError("the lazy grammar could not be parsed", param="grammar")
        return self._set_grammar(sampler, "grammar_lazy")

    def _set_grammar(self, sampler: Any, name: str) -> SamplerChain:
        if self._grammar is not None:
            self._lib.llama_sampler_free(sampler)
            raise InvalidRequestError("a sampler chain takes one grammar", param="grammar")
        self._grammar = sampler
        self.names.append(name)
        return self

    def infill(self) -> SamplerChain:
        return self._add(self._lib.llama_sampler_init_infill(self.model.vocab.handle), "infill")

    # --- assembly ---------------------------------------------------------------

    @classmethod
    def from_params(cls, model: Model, params: SamplingParams) -> SamplerChain:
        """The chain llama.cpp's tools build for the same options (greedy when temperature <= 0)."""
        chain = cls(model)
        try:
            if params.logit_bias:
                chain.logit_bias(params.logit_bias)
            if params.grammar:
                if params.grammar_lazy_patterns or params.grammar_trigger_tokens:
                    chain.grammar_lazy(params.grammar, params.grammar_lazy_patterns, params.grammar_trigger_tokens)
                else:
                    chain.grammar(params.grammar)
            if (
                params.repeat_penalty != 1.0
                or params.frequency_penalty != 0.0
                or params.presence_penalty != 0.0
            ) and params.repeat_last_n != 0:
                chain.penalties(
                    params.repeat_last_n, params.repeat_penalty, params.frequency_penalty, params.presence_penalty
                )
            if params.dry_multiplier > 0.0:
                chain.dry(
                    params.dry_multiplier,
                    params.dry_base,
                    params.dry_allowed_length,
                    params.dry_penalty_last_n,
                    params.dry_sequence_breakers,
                )
            seed = params.seed
            if params.temperature <= 0.0:
                chain.greedy()
            elif params.mirostat == 1:
                chain.temperature(params.temperature).mirostat(params.mirostat_tau, params.mirostat_eta, seed=seed)
            elif params.mirostat == 2:
                chain.temperature(params.temperature).mirostat_v2(params.mirostat_tau, params.mirostat_eta, seed=seed)
            else:
                if params.top_n_sigma > 0:
                    chain.top_n_sigma(params.top_n_sigma)
                if params.top_k > 0:
                    chain.top_k(params.top_k)
                if params.typical_p < 1.0:
                    chain.typical(params.typical_p)
                if params.top_p < 1.0:
                    chain.top_p(params.top_p)
                if params.min_p > 0.0:
                    chain.min_p(params.min_p)
                if params.xtc_probability > 0.0:
                    chain.xtc(params.xtc_probability, params.xtc_threshold, seed=seed)
                chain.temperature(params.temperature, params.dynatemp_range, params.dynatemp_exponent)
                chain.dist(seed)
        except BaseException:
            chain.close()
            raise
        return chain

    # --- sampling ---------------------------------------------------------------

    def sample(self, ctx: Any, row: int) -> int:
        """Sample from the logits of batch row `row` and accept the token."""
        if self._grammar is None:
            return int(self._sample(self.handle, ctx.handle, row))
        candidates = self._constrained(ctx.logits(row))
        if candidates is None:
            return self._grammar_exhausted()
        token = int(candidates.data[candidates.selected].id)
        self.accept(token)
        return token

    def _grammar_exhausted(self) -> int:
        """No token may follow (the grammar is complete and end-of-generation is banned, as
        with ignore_eos): answer end-of-generation without accepting it, so generation ends
        (or runs out its max_tokens) instead of the grammar aborting the process."""
        return self.model.vocab.eos

    def accept(self, token: int) -> None:
        """Advance every sampler past `token`, as if it had been sampled (forced text too)."""
        if self._grammar is not None:
            self._lib.llama_sampler_accept(self._grammar, token)
        self._lib.llama_sampler_accept(self.handle, token)

    def accept_prompt(self, token: int) -> None:
        """Feed a prompt token to the history samplers (penalties, DRY) only: a grammar
        constrains what is generated, never the prompt."""
        self._lib.llama_sampler_accept(self.handle, token)

    def reset(self) -> None:
        if self._grammar is not None:
            self._lib.llama_sampler_reset(self._grammar)
        self._lib.llama_sampler_reset(self.handle)

    def sample_with_probs(self, logits: np.ndarray, top_n: int) -> tuple[int, list[tuple[int, float]]]:
        """Apply the chain to `logits`, accept the chosen token, and return it with the
        top-N candidates and their probabilities after the chain (llama-server's n_probs)."""
        arr = self._constrained(logits)
        if arr is None:
            return self._grammar_exhausted(), []
        size = int(arr.size)
        view = np.frombuffer(self._ffi.buffer(arr.data, size * _TOKEN_DATA.itemsize), dtype=_TOKEN_DATA)
        token = int(view["id"][arr.selected])
        order = np.argsort(-view["p"], kind="stable")[:top_n]
        top = [(int(view["id"][i]), float(view["p"][i])) for i in order]
        self.accept(token)
        return token, top

    def _constrained(self, logits: np.ndarray) -> Any:
        """The candidates after the chain (and the grammar), with a valid `selected`, or None
        when the grammar allows no token; nothing is accepted yet. The grammar first checks
        only the chain's choice (cheap); when that breaks it, every token is checked and the
        chain runs again on what is left."""
        arr = self._apply_chain(logits, grammar_first=False)
        if self._grammar is None or self._grammar_allows(int(arr.data[arr.selected].id)):
            return arr
        arr = self._apply_chain(logits, grammar_first=True)
        return None if arr is None or arr.data[arr.selected].logit == -math.inf else arr

    def _apply_chain(self, logits: np.ndarray, *, grammar_first: bool) -> Any:
        n = len(logits)
        if self._candidates is None or len(self._candidates) != n:
            self._candidates = np.zeros(n, dtype=_TOKEN_DATA)
            self._token_ids = np.arange(n, dtype=np.int32)
            self._candidate_array = self._ffi.new("llama_token_data_array *")
        cand = self._candidates
        cand["id"] = self._token_ids  # the chain sorts and truncates in place
        cand["logit"] = logits
        cand["p"] = 0.0
        arr = self._candidate_array
        arr.data = self._ffi.cast("llama_token_data *", self._ffi.from_buffer(cand))
        arr.size = n
        arr.selected = -1
        arr.sorted = False
        if grammar_first:
            self._lib.llama_sampler_apply(self._grammar, arr)
            if not np.isfinite(cand["logit"][: int(arr.size)]).any():
                return None
        self._lib.llama_sampler_apply(self.handle, arr)
        if not 0 <= int(arr.selected) < int(arr.size):
            if grammar_first:
                return None  # every token the grammar left was then banned
            raise InvalidRequestError("the sampler chain selected no token")
        return arr

    def _grammar_allows(self, token: int) -> bool:
        data = self._ffi.new("llama_token_data *", (token, 1.0, 0.0))
        single = self._ffi.new("llama_token_data_array *", (data, 1, -1, False))
        self._lib.llama_sampler_apply(self._grammar, single)
        return bool(data.logit != -math.inf)


def _seed(seed: int | None) -> int:
    if seed is None or seed < 0:
        return random.getrandbits(32) & 0xFFFFFFFE  # any fixed value but the "random" marker
    return int(seed) & 0xFFFFFFFF


def validate_grammar(model: Model, gbnf: str, root: str = "root") -> None:
    """Raise GrammarError if llama.cpp's grammar parser rejects `gbnf`."""
    with SamplerChain(model) as chain:
        chain.grammar(gbnf, root)
