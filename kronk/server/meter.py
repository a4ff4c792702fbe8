"""Per-request inference metrics measured at the server edge.

The meter watches the neutral event stream (or a finished result) and feeds the
TTFT, inter-token-latency, queue-wait, token and tokens/s metrics, so every API
(OpenAI, Anthropic, Responses) is measured the same way.
"""

from __future__ import annotations

import time
from typing import Any

from kronk.engine.types import Finish, Usage
from kronk.server.metrics import ServerMetrics, context_bucket


class RequestMeter:
    """Measures one inference request; `model` labels every sample."""

    def __init__(self, metrics: ServerMetrics, model: str, endpoint: str, started: float | None = None) -> None:
        self._metrics = metrics
        self.model = model
        self._started = time.monotonic() if started is None else started
        self._first: float | None = None
        self._last: float | None = None
        self._itl = metrics.itl.labels(model=model)
        """Looked up once: on_event runs for every streamed delta."""
        metrics.count_request(model, endpoint)

    def on_event(self, event: Any) -> None:
        """Call for every streamed event; Finish closes the books for its choice."""
        if isinstance(event, Finish):
            self.on_usage(event.usage, streamed=True)
            return
        now = time.monotonic()
        if self._first is None:
            self._first = now
            self._metrics.ttft.labels(model=self.model).observe(now - self._started)
        elif self._last is not None:
            self._itl.observe(now - self._last)
        self._last = now

    def on_usage(self, usage: Usage, *, streamed: bool = False) -> None:
        m, model = self._metrics, self.model
        m.count_tokens(model, "prompt", usage.prompt_tokens)
        m.count_tokens(model, "completion", usage.completion_tokens)
        m.count_tokens(model, "cached", usage.cached_tokens)
        m.count_tokens(model, "reasoning", usage.reasoning_tokens)
        if not streamed and usage.completion_tokens and usage.time_to_first_token_ms > 0:
            m.ttft.labels(model=model).observe(usage.time_to_first_token_ms / 1000.0)
        if usage.queue_wait_ms > 0:
            m.queue_wait.labels(model=model).observe(usage.queue_wait_ms / 1000.0)
        if usage.tokens_per_second > 0:
            m.tokens_per_second.labels(model=model, context=context_bucket(usage.prompt_tokens)).observe(
                usage.tokens_per_second)


def count_prompt_only(metrics: ServerMetrics, model: str, endpoint: str, prompt_tokens: int) -> None:
    """Meter a request that reads a prompt and generates nothing (embeddings, rerank)."""
    metrics.count_request(model, endpoint)
    metrics.count_tokens(model, "prompt", prompt_tokens)
