"""The Prometheus text we write: types, labels, escaping, cumulative histogram buckets."""

from __future__ import annotations

import pytest

from kronk.server.metrics import Registry, ServerMetrics, context_bucket


def test_counter_gauge_and_histogram_render_in_text_format() -> None:
    registry = Registry()
    requests = registry.counter("x_requests_total", "Requests.", ("route",))
    busy = registry.gauge("x_busy", "Busy.")
    latency = registry.histogram("x_latency_seconds", "Latency.", ("model",), buckets=(0.1, 1.0))
    requests.inc(route="/a")
    requests.inc(2, route="/a")
    requests.inc(route='we"ird\\\n')
    busy.set(3)
    for value in (0.05, 0.5, 5.0):
        latency.observe(value, model="m")
    text = registry.render()
    assert "# TYPE x_requests_total counter" in text
    assert 'x_requests_total{route="/a"} 3' in text
    assert 'x_requests_total{route="we\\"ird\\\\\\n"} 1' in text
    assert "# TYPE x_busy gauge\nx_busy 3" in text
    assert 'x_latency_seconds_bucket{model="m",le="0.1"} 1' in text
    assert 'x_latency_seconds_bucket{model="m",le="1"} 2' in text
    assert 'x_latency_seconds_bucket{model="m",le="+Inf"} 3' in text
    assert 'x_latency_seconds_count{model="m"} 3' in text
    assert 'x_latency_seconds_sum{model="m"} 5.55' in text
    assert text.endswith("\n")


def test_wrong_labels_and_negative_counts_are_rejected() -> None:
    registry = Registry()
    counter = registry.counter("c_total", "C.", ("a",))
    with pytest.raises(ValueError):
        counter.inc(b="x")
    with pytest.raises(ValueError):
        counter.inc(-1, a="x")
    with pytest.raises(ValueError):
        registry.counter("c_total", "again")


def test_engine_gauges_come_from_sdk_stats() -> None:
    metrics = ServerMetrics()
    metrics.observe_engine({"m": {"active_slots": 1, "queued": 2, "kv_cells_used": 50, "n_ctx": 200,
                                  "prompt_cache_hits": 4}})
    text = metrics.render()
    assert 'kronk_slots_active{model="m"} 1' in text
    assert 'kronk_requests_queued{model="m"} 2' in text
    assert 'kronk_kv_cache_usage_ratio{model="m"} 0.25' in text
    assert 'kronk_prompt_cache_hits_total{model="m"} 4' in text
    assert "kronk_models_loaded 1" in text
    metrics.observe_engine({})
    assert 'kronk_slots_active{model="m"}' not in metrics.render()


def test_context_buckets() -> None:
    assert context_bucket(10) == "le_512"
    assert context_bucket(512) == "le_512"
    assert context_bucket(3000) == "le_8192"
    assert context_bucket(10**6) == "gt_32768"
