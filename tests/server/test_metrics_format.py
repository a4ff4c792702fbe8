"""What /metrics exposes: per-app registries, label sets, engine figures read at scrape time."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from kronk.server.metrics import ServerMetrics, context_bucket


def _families(text: bytes) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text.decode())}


def _sample(text: bytes, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def test_request_metrics_render_as_valid_exposition() -> None:
    metrics = ServerMetrics()
    metrics.http_requests.labels(route="/a", method="GET", status="200").inc()
    metrics.count_tokens("m", "prompt", 7)
    metrics.count_tokens("m", "cached", 0)
    metrics.count_request("m", "chat")
    for value in (0.004, 0.5, 70.0):
        metrics.ttft.labels(model="m").observe(value)
    text = metrics.render({})
    assert _sample(text, "kronk_http_requests_total", route="/a", method="GET", status="200") == 1
    assert _sample(text, "kronk_tokens_total", model="m", kind="prompt") == 7
    assert _sample(text, "kronk_tokens_total", model="m", kind="cached") is None
    assert _sample(text, "kronk_inference_requests_total", model="m", endpoint="chat") == 1
    assert _sample(text, "kronk_time_to_first_token_seconds_bucket", model="m", le="0.005") == 1
    assert _sample(text, "kronk_time_to_first_token_seconds_bucket", model="m", le="+Inf") == 3
    assert _sample(text, "kronk_time_to_first_token_seconds_count", model="m") == 3
    assert b"_created" not in text


def test_each_app_counts_on_its_own() -> None:
    first, second = ServerMetrics(), ServerMetrics()
    first.count_request("m", "chat")
    assert _sample(first.render({}), "kronk_inference_requests_total", model="m", endpoint="chat") == 1
    assert _sample(second.render({}), "kronk_inference_requests_total", model="m", endpoint="chat") is None


def test_engine_figures_come_from_sdk_stats() -> None:
    metrics = ServerMetrics()
    text = metrics.render({"m": {"active_slots": 1, "queued": 2, "kv_cells_used": 50, "n_ctx": 200,
                                 "prompt_cache_hits": 4, "prompt_tokens_total": 90}})
    assert _sample(text, "kronk_slots_active", model="m") == 1
    assert _sample(text, "kronk_requests_queued", model="m") == 2
    assert _sample(text, "kronk_kv_cache_cells_total", model="m") == 200
    assert _sample(text, "kronk_kv_cache_usage_ratio", model="m") == 0.25
    assert _sample(text, "kronk_prompt_cache_hits_total", model="m") == 4
    assert _sample(text, "kronk_engine_prompt_tokens_total", model="m") == 90
    assert _sample(text, "kronk_models_loaded") == 1
    families = _families(text)
    assert families["kronk_prompt_cache_hits"].type == "counter"  # type: ignore[attr-defined]
    assert families["kronk_slots_active"].type == "gauge"  # type: ignore[attr-defined]
    emptied = metrics.render({})
    assert _sample(emptied, "kronk_slots_active", model="m") is None
    assert _sample(emptied, "kronk_models_loaded") == 0


def test_context_buckets() -> None:
    assert context_bucket(10) == "le_512"
    assert context_bucket(512) == "le_512"
    assert context_bucket(3000) == "le_8192"
    assert context_bucket(10**6) == "gt_32768"
