"""Prometheus metrics in the text exposition format (0.0.4), written by us.

Why not `prometheus_client`: its default registry is process-global state (two
apps in one test process would share counters), and the gauges we need are read
from the SDK at scrape time anyway. Three small metric types and a renderer are
all the server needs, and each app owns its own `ServerMetrics`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LabelValues = tuple[str, ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOKEN_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5)
QUEUE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0)
TPS_BUCKETS = (1.0, 5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0, 150.0, 200.0, 300.0, 500.0, 1000.0, 5000.0)
CONTEXT_BUCKETS = (512, 2048, 8192, 32768)


def context_bucket(prompt_tokens: int) -> str:
    """A coarse label for the prompt length, so tokens/s can be compared by context size."""
    for edge in CONTEXT_BUCKETS:
        if prompt_tokens <= edge:
            return f"le_{edge}"
    return f"gt_{CONTEXT_BUCKETS[-1]}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(names: tuple[str, ...], values: LabelValues, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = [*zip(names, values, strict=True), *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


@dataclass(slots=True)
class _Metric:
    name: str
    help: str
    labelnames: tuple[str, ...] = ()

    def _key(self, labels: Mapping[str, Any]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)


@dataclass(slots=True)
class Counter(_Metric):
    values: dict[LabelValues, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, **labels: Any) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for key, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.labelnames, key)} {_format_value(value)}"


@dataclass(slots=True)
class Gauge(_Metric):
    values: dict[LabelValues, float] = field(default_factory=dict)

    def set(self, value: float, **labels: Any) -> None:
        self.values[self._key(labels)] = float(value)

    def inc(self, amount: float = 1.0, **labels: Any) -> None:
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: Any) -> None:
        self.inc(-amount, **labels)

    def clear(self) -> None:
        self.values.clear()

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for key, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.labelnames, key)} {_format_value(value)}"


@dataclass(slots=True)
class _Series:
    counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass(slots=True)
class Histogram(_Metric):
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    series: dict[LabelValues, _Series] = field(default_factory=dict)

    def observe(self, value: float, **labels: Any) -> None:
        key = self._key(labels)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = _Series(counts=[0] * len(self.buckets))
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.buckets):
            series.counts[index] += 1
        series.total += value
        series.count += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for key, series in sorted(self.series.items()):
            running = 0
            for edge, count in zip(self.buckets, series.counts, strict=True):
                running += count
                le = (("le", _format_value(edge)),)
                yield f"{self.name}_bucket{_labels(self.labelnames, key, le)} {running}"
            yield f"{self.name}_bucket{_labels(self.labelnames, key, (('le', '+Inf'),))} {series.count}"
            yield f"{self.name}_sum{_labels(self.labelnames, key)} {_format_value(series.total)}"
            yield f"{self.name}_count{_labels(self.labelnames, key)} {series.count}"


Metric = Counter | Gauge | Histogram


class Registry:
    """An ordered set of metrics plus collectors that refresh gauges at scrape time."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self._collectors: list[Callable[[], None]] = []

    def _add(self, metric: Metric) -> Any:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labels: tuple[str, ...] = ()) -> Counter:
        return self._add(Counter(name, help, labels))  # type: ignore[no-any-return]

    def gauge(self, name: str, help: str, labels: tuple[str, ...] = ()) -> Gauge:
        return self._add(Gauge(name, help, labels))  # type: ignore[no-any-return]

    def histogram(self, name: str, help: str, labels: tuple[str, ...] = (),
                  buckets: tuple[float, ...] = LATENCY_BUCKETS) -> Histogram:
        return self._add(Histogram(name, help, labels, buckets))  # type: ignore[no-any-return]

    def add_collector(self, collect: Callable[[], None]) -> None:
        self._collectors.append(collect)

    def render(self) -> str:
        for collect in self._collectors:
            collect()
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


class ServerMetrics:
    """Every metric the server exports, owned by one app."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.http_requests = r.counter("kronk_http_requests_total", "HTTP requests served.",
                                       ("route", "method", "status"))
        self.http_duration = r.histogram("kronk_http_request_duration_seconds",
                                         "Time from request to the end of the response.", ("route",))
        self.http_errors = r.counter("kronk_http_errors_total", "Requests answered with an error.",
                                     ("route", "code"))
        self.streams_active = r.gauge("kronk_streams_active", "SSE streams open now.")
        self.inference_requests = r.counter("kronk_inference_requests_total", "Inference requests by endpoint.",
                                            ("model", "endpoint"))
        self.tokens = r.counter("kronk_tokens_total", "Tokens processed: prompt, completion, cached, reasoning.",
                                ("model", "kind"))
        self.ttft = r.histogram("kronk_time_to_first_token_seconds",
                                "Time from request arrival to the first generated token.", ("model",),
                                LATENCY_BUCKETS)
        self.itl = r.histogram("kronk_inter_token_latency_seconds",
                               "Time between consecutive streamed deltas.", ("model",), TOKEN_LATENCY_BUCKETS)
        self.queue_wait = r.histogram("kronk_queue_wait_seconds",
                                      "Time a request waited for a free slot.", ("model",), QUEUE_BUCKETS)
        self.tokens_per_second = r.histogram("kronk_generation_tokens_per_second",
                                             "Generation speed per request, by prompt-length bucket.",
                                             ("model", "context"), TPS_BUCKETS)
        self.models_loaded = r.gauge("kronk_models_loaded", "Models in memory now.")
        self.slots_active = r.gauge("kronk_slots_active", "Slots generating now.", ("model",))
        self.requests_queued = r.gauge("kronk_requests_queued", "Requests waiting for a slot.", ("model",))
        self.kv_used = r.gauge("kronk_kv_cache_cells_used", "KV cache cells in use.", ("model",))
        self.kv_total = r.gauge("kronk_kv_cache_cells_total", "KV cache cells available.", ("model",))
        self.kv_usage = r.gauge("kronk_kv_cache_usage_ratio", "KV cache cells in use / available.", ("model",))
        self.n_ctx = r.gauge("kronk_context_size", "Context size of the loaded model.", ("model",))
        self.prompt_cache_hits = r.gauge("kronk_prompt_cache_hits_total",
                                         "Requests that reused a cached prompt prefix (since load).", ("model",))
        self.engine_prompt_tokens = r.gauge("kronk_engine_prompt_tokens_total",
                                            "Prompt tokens the engine evaluated (since load).", ("model",))
        self.engine_completion_tokens = r.gauge("kronk_engine_completion_tokens_total",
                                                "Tokens the engine generated (since load).", ("model",))

    def observe_engine(self, stats: Mapping[str, Any]) -> None:
        """Refresh the engine gauges from `AsyncKronk.stats()` (model id -> ModelStats)."""
        gauges = (self.slots_active, self.requests_queued, self.kv_used, self.kv_total, self.kv_usage,
                  self.n_ctx, self.prompt_cache_hits, self.engine_prompt_tokens, self.engine_completion_tokens)
        for gauge in gauges:
            gauge.clear()
        self.models_loaded.set(len(stats))
        for model, s in stats.items():
            used = float(_stat(s, "kv_cells_used"))
            total = float(_stat(s, "kv_cells_total") or _stat(s, "n_ctx"))
            self.slots_active.set(_stat(s, "active_slots"), model=model)
            self.requests_queued.set(_stat(s, "queued"), model=model)
            self.kv_used.set(used, model=model)
            self.kv_total.set(total, model=model)
            self.kv_usage.set(used / total if total else 0.0, model=model)
            self.n_ctx.set(_stat(s, "n_ctx"), model=model)
            self.prompt_cache_hits.set(_stat(s, "prompt_cache_hits"), model=model)
            self.engine_prompt_tokens.set(_stat(s, "prompt_tokens_total"), model=model)
            self.engine_completion_tokens.set(_stat(s, "completion_tokens_total"), model=model)

    def render(self) -> str:
        return self.registry.render()


def _stat(stats: Any, name: str) -> float:
    """A field of a ModelStats object or dict (0 when the engine does not report it)."""
    value = stats.get(name, 0) if isinstance(stats, Mapping) else getattr(stats, name, 0)
    return float(value or 0)
