"""Schemathesis hooks for tests/server/test_openapi_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

Generated bodies keep their shape; two fields are pinned so the run stays fast and on
a tiny model that can serve the route: `model` (a random name is just a 404; the
routes' models come as JSON in KRONK_FUZZ_MODELS, path -> model, the rest use the
server's default) and the output length (a random max_tokens is a long generation on
two cores).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis

MAX_OUTPUT_TOKENS = 4
_OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_GENERATING = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages")
_MODELS: dict[str, str] = json.loads(os.environ.get("KRONK_FUZZ_MODELS", "{}"))


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: Any, kwargs: dict[str, Any]) -> None:
    """Every phase sends through here (map_body does not see the coverage phase's cases)."""
    if isinstance(case.body, dict):
        _pin(case.operation.path, case.body)


def _pin(path: str, body: dict[str, Any]) -> None:
    if path.startswith(("/v1/kronk", "/v1/security")):
        return
    body.pop("model", None)
    model = _MODELS.get(path)
    if model is not None:
        body["model"] = model
    if path in _GENERATING:
        for name in _OUTPUT_FIELDS:
            value = body.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_OUTPUT_TOKENS:
                body[name] = MAX_OUTPUT_TOKENS
        if path == "/v1/chat/completions" and not any(isinstance(body.get(n), int) for n in _OUTPUT_FIELDS):
            body["max_tokens"] = MAX_OUTPUT_TOKENS
