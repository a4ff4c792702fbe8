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
        metrics.inference_requests.inc(model=model, endpoint=endpoint)

    def on_event(self, event: Any) -> None:
        """Call for every streamed event; Finish closes the books for its choice."""
        if isinstance(event, Finish):
            self.on_usage(event.usage, streamed=True)
            return
        now = time.monotonic()
        if self._first is None:
            self._first = now
            self._metrics.ttft.observe(now - self._started, model=self.model)
        elif self._last is not None:
            self._metrics.itl.observe(now - self._last, model=self.model)
        self._last = now

    def on_usage(self, usage: Usage, *, streamed: bool = False) -> None:
        m, model = self._metrics, self.model
        m.tokens.inc(usage.prompt_tokens, model=model, kind="prompt")
        m.tokens.inc(usage.completion_tokens, model=model, kind="completion")
        if usage.cached_tokens:
            m.tokens.inc(usage.cached_tokens, model=model, kind="cached")
        if usage.reasoning_tokens:
            m.tokens.inc(usage.reasoning_tokens, model=model, kind="reasoning")
        if not streamed and usage.completion_tokens and usage.time_to_first_token_ms > 0:
            m.ttft.observe(usage.time_to_first_token_ms / 1000.0, model=model)
        if usage.queue_wait_ms > 0:
            m.queue_wait.observe(usage.queue_wait_ms / 1000.0, model=model)
        if usage.tokens_per_second > 0:
            m.tokens_per_second.observe(usage.tokens_per_second, model=model,
                                        context=context_bucket(usage.prompt_tokens))
