"""A few minutes of the server's figures, sampled in memory for the browser UI's charts.

Prometheus keeps counters and histograms, which need a scraper to turn into rates. The
UI has no scraper, so a background task reads the same metrics every few seconds and keeps
the differences (tokens/s, requests, mean TTFT per interval) in a fixed-size ring buffer.
Nothing here touches the decode threads: the engine figures come from `AsyncKronk.stats()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web
from prometheus_client.metrics import MetricWrapperBase

from kronk.server.keys import KRONK, METRICS
from kronk.server.metrics import ServerMetrics

log = logging.getLogger("kronk.server")

INTERVAL_SECONDS = 5.0
WINDOW_SECONDS = 15 * 60.0


@dataclass(frozen=True, slots=True)
class Sample:
    """The figures of one interval that ended at `t` (unix seconds)."""

    t: float
    interval_seconds: float
    requests: int
    """Inference requests that arrived in the interval."""
    errors: int
    completion_tokens_per_second: float
    prompt_tokens_per_second: float
    ttft_ms: float | None
    """Mean time to first token of the requests that got one in the interval (None: none did)."""
    active_slots: int
    queued: int
    streams: int


@dataclass(frozen=True, slots=True)
class _Totals:
    at: float
    requests: float
    errors: float
    completion: float
    prompt: float
    ttft_sum: float
    ttft_count: float


def _sum(metric: MetricWrapperBase, suffix: str = "_total", **labels: str) -> float:
    """The sum of one metric's samples named `<name><suffix>` whose labels include `labels`."""
    total = 0.0
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(suffix) and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _totals(metrics: ServerMetrics, now: float) -> _Totals:
    return _Totals(
        at=now,
        requests=_sum(metrics.inference_requests),
        errors=_sum(metrics.http_errors),
        completion=_sum(metrics.tokens, kind="completion"),
        prompt=_sum(metrics.tokens, kind="prompt"),
        ttft_sum=_sum(metrics.ttft, "_sum"),
        ttft_count=_sum(metrics.ttft, "_count"),
    )


class MetricsHistory:
    """A ring buffer of `Sample`s; `sample()` closes one interval (call it every INTERVAL_SECONDS)."""

    def __init__(self, metrics: ServerMetrics, engine_stats: Callable[[], Mapping[str, Any]],
                 *, window_seconds: float = WINDOW_SECONDS, interval_seconds: float = INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.engine_stats = engine_stats
        self.interval_seconds = interval_seconds
        self.window_seconds = window_seconds
        self.samples: deque[Sample] = deque(maxlen=max(2, int(window_seconds / interval_seconds)))
        self.clock = clock
        self._last = _totals(metrics, clock())

    def sample(self) -> Sample:
        now = _totals(self.metrics, self.clock())
        last, self._last = self._last, now
        dt = max(now.at - last.at, 1e-6)
        answered = now.ttft_count - last.ttft_count
        stats = self.engine_stats()
        sample = Sample(
            t=round(now.at, 3),
            interval_seconds=round(dt, 3),
            requests=int(now.requests - last.requests),
            errors=int(now.errors - last.errors),
            completion_tokens_per_second=round((now.completion - last.completion) / dt, 2),
            prompt_tokens_per_second=round((now.prompt - last.prompt) / dt, 2),
            ttft_ms=round((now.ttft_sum - last.ttft_sum) / answered * 1000.0, 1) if answered > 0 else None,
            active_slots=int(sum(getattr(s, "active_slots", 0) for s in stats.values())),
            queued=int(sum(getattr(s, "queued", 0) for s in stats.values())),
            streams=int(_sum(self.metrics.streams_active, "")),
        )
        self.samples.append(sample)
        return sample

    def since(self, seconds: float) -> list[dict[str, Any]]:
        """The samples of the last `seconds`, oldest first, as JSON-ready dicts."""
        cutoff = self.clock() - seconds
        return [asdict(s) for s in self.samples if s.t >= cutoff]


HISTORY = web.AppKey("metrics_history", MetricsHistory)


async def _sample_forever(history: MetricsHistory) -> None:
    while True:
        await asyncio.sleep(history.interval_seconds)
        try:
            history.sample()
        except Exception:  # a dashboard figure must never take the server down
            log.exception("sampling the metrics history failed")


def install(app: web.Application, *, interval_seconds: float = INTERVAL_SECONDS) -> None:
    """Keep a MetricsHistory under HISTORY, sampled by a task that lives as long as the app."""
    app[HISTORY] = MetricsHistory(app[METRICS], lambda: app[KRONK].stats(), interval_seconds=interval_seconds)

    async def sampler(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_sample_forever(app[HISTORY]), name="kronk-metrics-history")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(sampler)
