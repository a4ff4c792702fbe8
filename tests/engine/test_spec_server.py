"""Speculative decoding through the server: the settings, the `kronk_speculation` request field
(chat completions and completions), its 400s, and the Prometheus figures per model."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kronk.errors import ConfigError
from kronk.sdk.settings import ModelSettings
from kronk.server.keys import HEALTH
from kronk.settings import load_settings
from tests.server.conftest import RunningServer, StartServer, http, start_server  # noqa: F401 (fixtures)

PROMPT = ("Repeat this exactly: the quick brown fox jumps over the lazy dog, the quick brown fox jumps over "
          "the lazy dog, the quick brown fox jumps over the lazy dog.")


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with session.post(url, json=body) as response:
        return response.status, await response.json()


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name}\{{model=\"[^\"]+\"\}} (\S+)$", text, re.M)
    assert match, f"{name} missing from:\n{text}"
    return float(match.group(1))


@pytest.mark.slow
@pytest.mark.requires_libs
async def test_requests_speculate_and_the_figures_are_exported(
    start_server: StartServer, http: aiohttp.ClientSession, smollm2: Path  # noqa: F811
) -> None:
    server: RunningServer = await start_server(model=str(smollm2), spec_type="off", spec_draft_max=8)
    await server.ready()
    plain = {"prompt": PROMPT + "\n\nthe quick brown", "max_tokens": 32, "temperature": 0, "ignore_eos": True}
    status, off = await _post(http, server.v1 + "/completions", plain)
    assert status == 200
    status, on = await _post(http, server.v1 + "/completions",
                             {**plain, "kronk_speculation": {"type": "ngram", "draft_max": 8}})
    assert status == 200
    assert on["choices"][0]["text"] == off["choices"][0]["text"]
    status, chat = await _post(http, server.v1 + "/chat/completions", {
        "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 16, "temperature": 0,
        "kronk_speculation": {"type": "ngram"}})
    assert status == 200 and chat["choices"][0]["finish_reason"] in ("stop", "length")
    async with http.get(server.url + "/metrics") as response:
        text = await response.text()
    drafted = _metric(text, "kronk_spec_drafted_tokens_total")
    accepted = _metric(text, "kronk_spec_accepted_tokens_total")
    assert drafted > 0 and 0 <= accepted <= drafted
    assert _metric(text, "kronk_spec_acceptance_rate") == pytest.approx(accepted / drafted)
    assert 0.01 <= _metric(text, "kronk_spec_row_cost_ratio") <= 1.0


@pytest.mark.requires_libs
async def test_a_bad_kronk_speculation_is_a_400(
    start_server: StartServer, http: aiohttp.ClientSession  # noqa: F811
) -> None:
    server = await start_server()
    await server.ready()
    cases = [({"type": "magic"}, "kronk_speculation.type"), ({"draft_max": 65}, "kronk_speculation.draft_max"),
             ({"draft_max": -1}, "kronk_speculation.draft_max"), ("ngram", "kronk_speculation"),
             ({"type": "draft"}, "kronk_speculation.type"), ({"extra": 1}, "kronk_speculation.extra")]
    for value, param in cases:
        for route, body in (("/completions", {"prompt": "hi", "max_tokens": 2}),
                            ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                                   "max_tokens": 2})):
            status, answer = await _post(http, server.v1 + route, {**body, "kronk_speculation": value})
            assert status == 400, (route, value, answer)
            assert answer["error"]["param"] == param, (route, value, answer)


def test_speculation_settings_come_from_flags_env_and_files(tmp_path: Path) -> None:
    config = tmp_path / "models.yaml"
    config.write_text("models:\n  smollm2:\n    spec_type: ngram\n    spec_draft_max: 24\n")
    settings = load_settings({"spec_type": "ngram", "draft_model": "smollm2", "model_config": str(config)},
                             {"KRONK_SPEC_DRAFT_MAX": "12"})
    assert (settings.spec_type, settings.spec_draft_max, settings.draft_model) == ("ngram", 12, "smollm2")
    assert settings.model_overrides()["spec_type"] == "ngram"
    assert settings.per_model["smollm2"] == {"spec_type": "ngram", "spec_draft_max": 24}
    assert ModelSettings().merged(settings.per_model["smollm2"]).spec_draft_max == 24
    with pytest.raises(ConfigError, match="spec-type"):
        load_settings({"spec_type": "medusa"}, {})
    with pytest.raises(ConfigError, match="spec-draft-max"):
        load_settings({"spec_draft_max": 500}, {})


@pytest.mark.slow
@pytest.mark.requires_libs
async def test_a_model_served_with_a_draft_model(
    start_server: StartServer, http: aiohttp.ClientSession, smollm2: Path, tiny: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    # model_paths off: the operator's draft model path (another path to the same file) is allowed all the same
    draft = tmp_path / "draft.gguf"
    draft.symlink_to(smollm2)
    server = await start_server(model=str(smollm2), spec_type="draft", draft_model=str(draft), spec_draft_max=4,
                                model_paths=False)
    await server.ready()
    body = {"prompt": PROMPT, "max_tokens": 24, "temperature": 0, "ignore_eos": True}
    status, answer = await _post(http, server.v1 + "/completions", body)
    assert status == 200, answer
    async with http.get(server.url + "/metrics") as response:
        text = await response.text()
    drafted = _metric(text, "kronk_spec_drafted_tokens_total")
    assert drafted > 0 and _metric(text, "kronk_spec_accepted_tokens_total") == drafted  # itself: all accepted
    # a draft model with another vocabulary: the load fails, saying why
    other = await start_server(model=str(smollm2), spec_type="draft", draft_model=str(tiny["chat"]))
    while other.app[HEALTH].state not in ("failed", "ready"):
        await asyncio.sleep(0.05)
    assert other.app[HEALTH].state == "failed" and "vocabulary" in str(other.app[HEALTH].error)
