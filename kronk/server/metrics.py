"""Prometheus metrics for one server app, on `prometheus_client`.

Each app owns a `CollectorRegistry`, so two apps in one process (tests, replicas) keep
their own counts; nothing is registered in the library's global default registry.
Request-edge metrics are ordinary Counters, Gauges and Histograms fed by the
middleware, the stream writer and `RequestMeter`. The engine's figures live in the
SDK and are read only at scrape time by `EngineCollector`, so the decode threads
never touch Prometheus: gauges for what is true now (slots, queue, KV cells) and
counters for what only grows while a model stays loaded (they reset on reload,
which Prometheus' `rate()` handles as a counter reset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Our names are all classic (no UTF-8), so the text is 0.0.4, which every Prometheus reads."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOKEN_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5)
QUEUE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0)
TPS_BUCKETS = (1.0, 5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0, 5000.0)
CONTEXT_BUCKETS = (512, 2048, 8192, 32768)

# `*_created` timestamps double the series count and no dashboard of ours reads them.
prometheus_client.disable_created_metrics()


def context_bucket(prompt_tokens: int) -> str:
    """A coarse label for the prompt length, so tokens/s can be compared by context size."""
    for edge in CONTEXT_BUCKETS:
        if prompt_tokens <= edge:
            return f"le_{edge}"
    return f"gt_{CONTEXT_BUCKETS[-1]}"


# (metric name, help, stats field) of each engine figure, per model.
_ENGINE_GAUGES = (
    ("kronk_slots_active", "Slots generating now.", "active_slots"),
    ("kronk_requests_queued", "Requests waiting for a slot.", "queued"),
    ("kronk_kv_cache_cells_used", "KV cache cells in use.", "kv_cells_used"),
    ("kronk_context_size", "Context size of the loaded model.", "n_ctx"),
    ("kronk_spec_row_cost_ratio", "A speculative draft row's measured decode cost relative to a one-token step.",
     "spec_row_cost"),
)
_ENGINE_COUNTERS = (
    ("kronk_prompt_cache_hits", "Requests that reused a cached prompt prefix (since load).", "prompt_cache_hits"),
    ("kronk_engine_prompt_tokens", "Prompt tokens the engine evaluated (since load).", "prompt_tokens_total"),
    ("kronk_engine_completion_tokens", "Tokens the engine generated (since load).", "completion_tokens_total"),
    ("kronk_spec_drafted_tokens", "Speculative draft tokens verified (since load).", "spec_drafted_tokens"),
    ("kronk_spec_accepted_tokens", "Speculative draft tokens accepted (since load).", "spec_accepted_tokens"),
)


class EngineCollector(Collector):
    """Turns the latest `AsyncKronk.stats()` snapshot (model id -> ModelStats) into metrics."""

    def __init__(self) -> None:
        self.stats: Mapping[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        loaded = GaugeMetricFamily("kronk_models_loaded", "Models in memory now.")
        loaded.add_metric([], len(stats))
        yield loaded
        for name, help_text, field in _ENGINE_GAUGES:
            yield _per_model(GaugeMetricFamily(name, help_text, labels=["model"]), stats, _field(field))
        yield _per_model(GaugeMetricFamily("kronk_kv_cache_cells_total", "KV cache cells available.",
                                           labels=["model"]), stats, _kv_cells)
        yield _per_model(GaugeMetricFamily("kronk_kv_cache_usage_ratio", "KV cache cells in use / available.",
                                           labels=["model"]), stats, _kv_usage)
        for name, help_text, field in _ENGINE_COUNTERS:
            yield _per_model(CounterMetricFamily(name, help_text, labels=["model"]), stats, _field(field))
        yield _per_model(GaugeMetricFamily("kronk_spec_acceptance_rate",
                                           "Speculative draft tokens accepted / drafted since load (0 before any).",
                                           labels=["model"]), stats, _acceptance)


class ServerMetrics:
    """Every metric the server exports, owned by one app."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter("kronk_http_requests", "HTTP requests served.",
                                     ("route", "method", "status"), registry=r)
        self.http_duration = Histogram("kronk_http_request_duration_seconds",
                                       "Time from request to the end of the response.", ("route",),
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.http_errors = Counter("kronk_http_errors", "Requests answered with an error.", ("route", "code"),
                                   registry=r)
        self.streams_active = Gauge("kronk_streams_active", "SSE streams open now.", registry=r)
        self.inference_requests = Counter("kronk_inference_requests", "Inference requests by endpoint.",
                                          ("model", "endpoint"), registry=r)
        self.tokens = Counter("kronk_tokens", "Tokens processed: prompt, completion, cached, reasoning.",
                              ("model", "kind"), registry=r)
        self.ttft = Histogram("kronk_time_to_first_token_seconds",
                              "Time from request arrival to the first generated token.", ("model",),
                              buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("kronk_inter_token_latency_seconds", "Time between consecutive streamed deltas.",
                             ("model",), buckets=TOKEN_LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("kronk_queue_wait_seconds", "Time a request waited for a free slot.",
                                    ("model",), buckets=QUEUE_BUCKETS, registry=r)
        self.tokens_per_second = Histogram("kronk_generation_tokens_per_second",
                                           "Generation speed per request, by prompt-length bucket.",
                                           ("model", "context"), buckets=TPS_BUCKETS, registry=r)
        self.engine = EngineCollector()
        r.register(self.engine)

    def count_request(self, model: str, endpoint: str) -> None:
        self.inference_requests.labels(model=model, endpoint=endpoint).inc()

    def count_tokens(self, model: str, kind: str, amount: int) -> None:
        if amount:
            self.tokens.labels(model=model, kind=kind).inc(amount)

    def count_error(self, route: str, code: str) -> None:
        self.http_errors.labels(route=route, code=code).inc()

    def render(self, engine_stats: Mapping[str, Any]) -> bytes:
        """The exposition text, with the engine figures taken from `engine_stats`."""
        self.engine.stats = engine_stats
        return prometheus_client.generate_latest(self.registry)


def _stat(stats: Any, name: str) -> float:
    """A field of a ModelStats object or dict (0 when the engine does not report it)."""
    value = stats.get(name, 0) if isinstance(stats, Mapping) else getattr(stats, name, 0)
    return float(value or 0)


def _per_model(family: GaugeMetricFamily | CounterMetricFamily, stats: Mapping[str, Any],
               value: Callable[[Any], float]) -> Metric:
    """One sample per loaded model (label `model`), so every engine figure is filled the same way."""
    for model, s in stats.items():
        family.add_metric([model], value(s))
    return family


def _field(name: str) -> Callable[[Any], float]:
    return lambda s: _stat(s, name)


def _kv_cells(s: Any) -> float:
    """The KV cache's cells; the context size where the engine does not report them."""
    return _stat(s, "kv_cells_total") or _stat(s, "n_ctx")


def _kv_usage(s: Any) -> float:
    cells = _kv_cells(s)
    return _stat(s, "kv_cells_used") / cells if cells else 0.0


def _acceptance(s: Any) -> float:
    drafted = _stat(s, "spec_drafted_tokens")
    return _stat(s, "spec_accepted_tokens") / drafted if drafted else 0.0
