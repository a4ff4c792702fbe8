"""What a request asks of llama.cpp's sampler chain.

Declared in the llama layer, where `SamplerChain` builds a chain from it; the engine and
everything above import it from here (kronk.engine.types re-exports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SamplingParams:
    """Every sampler option of llama.cpp's chain; defaults follow llama-server.

    temperature <= 0 means greedy decoding.
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    dynatemp_range: float = 0.0
    dynatemp_exponent: float = 1.0
    top_n_sigma: float = -1.0
    xtc_probability: float = 0.0
    xtc_threshold: float = 0.1
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    dry_multiplier: float = 0.0
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1
    dry_sequence_breakers: list[str] = field(default_factory=lambda: ["\n", ":", '"', "*"])
    mirostat: int = 0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    logit_bias: dict[int, float] = field(default_factory=dict)
    seed: int | None = None
    grammar: str | None = None
    """GBNF text; the output is constrained to it."""
    grammar_lazy_patterns: list[str] = field(default_factory=list)
    """If set, the grammar only applies once output matches one of these regexes."""
    grammar_trigger_tokens: list[int] = field(default_factory=list)
