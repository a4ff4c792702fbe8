"""Per-model default server tools from the model config file (`tools: {builtins, mcp}`)."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest

from kronk.errors import ConfigError
from kronk.server.agent.defaults import ModelTools, model_tools, parse_model_tools
from kronk.server.app import create_app
from kronk.settings import ServerSettings, read_model_config
from tests.server.conftest import StartServer
from tests.server.openai.test_responses_server_tools import SECRET
from tests.tools.conftest import HttpMcp


def test_the_model_config_file_carries_tools(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  llama:\n    tools: {builtins: [web_fetch], mcp: [docs]}\n")
    per_model = read_model_config(path)
    settings = ServerSettings(model="llama", per_model=per_model)
    assert model_tools(settings, None) == ModelTools(("web_fetch",), ("docs",))
    assert model_tools(settings, "other") == ModelTools()
    assert not model_tools(settings, "other")


@pytest.mark.parametrize(("value", "message"), [
    ("web_fetch", "must be a mapping"),
    ({"builtin": ["web_fetch"]}, "unknown key 'builtin'"),
    ({"builtins": "web_fetch"}, "builtins: must be a list"),
    ({"builtins": ["shell"]}, "'shell' is not a built-in tool"),
    ({"mcp": [""]}, "mcp: must be a list"),
])
def test_a_bad_tools_entry_stops_the_server_at_startup(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_model_tools(value, "tools")
    with pytest.raises(ConfigError, match=message):
        create_app(ServerSettings(model="llama", per_model={"llama": {"tools": value}}))


@pytest.mark.slow
@pytest.mark.requires_libs
async def test_a_models_default_tools_run_in_chat_and_responses(start_server: StartServer, smollm2: Path,
                                                               http_mcp: HttpMcp, tmp_path: Path) -> None:
    """Chat without kronk_tools runs the loop (its answer reports it); Responses offers the default
    MCP server (listed, and a tool_choice may name its tool) with no `mcp` tool in the request."""
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"test": {"url": http_mcp.url, "headers": {"Authorization": SECRET}}}}))
    server = await start_server(model=str(smollm2), threads=2, ctx_size=4096, tools_allow=("127.0.0.1",),
                                agent_max_iterations=1, mcp_config=str(config),
                                per_model={str(smollm2): {"tools": {"builtins": ["web_fetch"], "mcp": ["test"]}}})
    await server.ready()
    client = openai.AsyncOpenAI(base_url=server.v1, api_key="unused", max_retries=0)
    answer = await client.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}],
                                                  max_tokens=40, temperature=0)
    assert "kronk_tools" in answer.model_extra
    # a request's own kronk_tools replaces the defaults: an empty one turns them off
    plain = await client.chat.completions.create(model="", messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=4, extra_body={"kronk_tools": {}})
    assert "kronk_tools" not in (plain.model_extra or {})

    response = await client.responses.create(model="", input="Who am I? Use the tool.", max_output_tokens=120,
                                             temperature=0, tool_choice={"type": "mcp", "server_label": "test",
                                                                         "name": "whoami"})
    assert response.output[0].type == "mcp_list_tools" and response.output[0].server_label == "test"
    call = next(item for item in response.output if item.type == "mcp_call")
    assert (call.name, call.output) == ("whoami", SECRET)
