"""Real OpenAI and Anthropic SDK clients with a token as their api_key."""

from __future__ import annotations

import anthropic
import openai
import pytest
from aiohttp.test_utils import TestClient

from kronk.security.keys import KeyStore
from tests.security.conftest import FakeClock, grants, handler_calls, mint


def _openai(client: TestClient, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=token, max_retries=0)


async def test_openai_client_uses_the_token(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    token = mint(keys, clock, endpoints=grants(chat_completions="1/day"), subject="sdk-user").token
    sdk = _openai(client, token)
    raw = await sdk.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert raw.http_response.status_code == 200
    assert handler_calls(client)[0][1].subject == "sdk-user"
    with pytest.raises(openai.RateLimitError) as limited:
        await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert int(limited.value.response.headers["retry-after"]) > 0
    with pytest.raises(openai.PermissionDeniedError):
        await sdk.embeddings.create(model="m", input="hi")
    with pytest.raises(openai.AuthenticationError) as refused:
        await _openai(client, token + "x").chat.completions.create(model="m", messages=[])
    assert refused.value.code in ("signature_invalid", "token_malformed")
    await sdk.close()


async def test_anthropic_client_sends_x_api_key(client: TestClient, keys: KeyStore, clock: FakeClock) -> None:
    token = mint(keys, clock, endpoints=grants(messages="unlimited")).token
    sdk = anthropic.AsyncAnthropic(base_url=str(client.make_url("")), api_key=token, max_retries=0)
    raw = await sdk.messages.with_raw_response.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.http_response.status_code == 200
    bad = anthropic.AsyncAnthropic(base_url=str(client.make_url("")), api_key="nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        await bad.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    await sdk.close()
    await bad.close()
