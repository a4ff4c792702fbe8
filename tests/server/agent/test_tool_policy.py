"""The security policy sees each server tool call (`input.tool`) and can deny it: the model then
gets an error result, and the request still finishes. A real server under --security full, a
policy folder whose authorization policy denies the `whoami` tool, the real HTTP MCP server."""

from __future__ import annotations

import shutil
import time
from datetime import timedelta
from pathlib import Path

import openai
import pytest

from kronk import paths
from kronk.security.keys import KeyStore
from kronk.security.policy import default_policy_dir
from kronk.security.tokens import Grant, Window, issue_token
from tests.server.conftest import StartServer
from tests.tools.conftest import HttpMcp

pytestmark = [pytest.mark.slow, pytest.mark.requires_libs]

DENY_WHOAMI = """package kronk.authorization

import rego.v1

claims := input.token.claims

default granted := false

granted if claims.admin == true

granted if input.route.access == "authenticated"

granted if {
\tinput.route.access == "grant"
\tis_object(claims.endpoints[input.route.endpoint])
}

reasons contains "endpoint_not_granted" if not granted

reasons contains "tool_denied" if input.tool.name == "whoami"

default allow := false

allow if {
\tgranted
\tcount(reasons) == 0
}

decision := {"allow": allow, "reasons": sort(reasons)}
"""


async def test_a_policy_denies_a_tool_and_the_model_sees_why(start_server: StartServer, smollm2: Path,
                                                              http_mcp: HttpMcp, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), policies)
    (policies / "authorization.rego").write_text(DENY_WHOAMI)
    monkeypatch.setenv("KRONK_POLICY_DIR", str(policies))
    server = await start_server(model=str(smollm2), threads=2, ctx_size=4096, tools_allow=("127.0.0.1",),
                                agent_max_iterations=1, security="full")
    await server.ready()
    token = issue_token(KeyStore(paths.keys_dir()), issuer="kronk", duration=timedelta(hours=1), now=time.time(),
                        subject="tester", endpoints={"chat-completions": Grant(Window.UNLIMITED),
                                                     "tools": Grant(Window.UNLIMITED)}).token
    client = openai.AsyncOpenAI(base_url=server.v1, api_key=token, max_retries=0)
    answer = await client.chat.completions.create(
        model="", messages=[{"role": "user", "content": "Who am I? Use the tool."}], max_tokens=80, temperature=0,
        tool_choice={"type": "function", "function": {"name": "whoami"}},
        extra_body={"kronk_tools": {"mcp": [{"server_label": "test", "server_url": http_mcp.url,
                                             "headers": {"Authorization": "Bearer secret"}}]}})
    first = answer.model_extra["kronk_tools"]["calls"][0]
    assert first["name"] == "whoami" and first["is_error"]
    assert first["output"] == "error: the security policy denied the tool 'whoami' (tool_denied)"
    assert answer.choices[0].finish_reason in ("stop", "length")
