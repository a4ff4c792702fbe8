"""`kronk rpc-server`'s bind check and the `rpc` setting, without starting anything.

The refusal of a non-loopback address is proven on the parsed address: the program is
never looked up, exec'd or bound (both are stubbed to fail the test if reached).
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kronk.cli import rpc as rpc_cli
from kronk.cli.main import cli
from kronk.errors import ConfigError, RPCUnavailableError
from kronk.llama import rpc
from kronk.settings import load_settings


@pytest.fixture
def no_start(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record what would be exec'd instead of running it."""
    calls: list[list[str]] = []

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append([*argv, f"LLAMA_CACHE={env.get('LLAMA_CACHE', '')}"])

    monkeypatch.setattr(rpc_cli.os, "execve", fake_execve)
    monkeypatch.setattr(rpc_cli, "find_program", lambda: Path("/opt/llama/bin/ggml-rpc-server"))
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "192.168.0.7", "8.8.8.8"])
def test_a_non_loopback_host_is_refused_before_anything_starts(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: Any) -> None:
        raise AssertionError("the refusal must come before the program is looked up or run")

    monkeypatch.setattr(rpc_cli, "find_program", must_not_run)
    monkeypatch.setattr(rpc_cli.os, "execve", must_not_run)
    result = CliRunner().invoke(cli, ["rpc-server", "--host", host, "--port", "50052"])
    assert result.exit_code == 2
    assert f"refusing to bind {host}" in result.output and "no authentication" in result.output
    assert "--allow-remote" in result.output


@pytest.mark.parametrize("host, reason", [("::1", "IPv4 only"), ("example.com", "give an IPv4 address"),
                                          ("localhost", "give an IPv4 address")])
def test_names_and_ipv6_are_refused_without_resolving(host: str, reason: str, no_start: list[list[str]]) -> None:
    result = CliRunner().invoke(cli, ["rpc-server", "--host", host])
    assert result.exit_code == 2 and reason in result.output and no_start == []


def test_allow_remote_lets_the_operator_bind_any_address(no_start: list[list[str]]) -> None:
    result = CliRunner().invoke(cli, ["rpc-server", "--host", "0.0.0.0", "--allow-remote", "--port", "6000"])
    assert result.exit_code == 0, result.output
    assert "unauthenticated" in result.output
    assert no_start == [["/opt/llama/bin/ggml-rpc-server", "--host", "0.0.0.0", "--port", "6000", "LLAMA_CACHE="]]


def test_loopback_with_threads_devices_and_a_cache(no_start: list[list[str]], tmp_path: Path) -> None:
    cache = tmp_path / "rpc-cache"
    result = CliRunner().invoke(cli, ["rpc-server", "--host", "127.0.0.1", "--port", "50060", "--threads", "3",
                                      "--device", "CPU", "--cache-dir", str(cache)])
    assert result.exit_code == 0, result.output
    assert result.output == ""  # loopback: no warning
    assert no_start == [["/opt/llama/bin/ggml-rpc-server", "--host", "127.0.0.1", "--port", "50060",
                         "--threads", "3", "--device", "CPU", "--cache", f"LLAMA_CACHE={cache.resolve()}"]]
    assert cache.is_dir()


def test_a_build_without_the_rpc_server_says_how_to_get_one(tmp_path: Path) -> None:
    (tmp_path / "libllama.so").write_bytes(b"")
    with pytest.raises(Exception, match="has no RPC server.*kronk libs --upgrade --source sdist"):
        rpc_cli.find_program({"KRONK_LIB_PATH": str(tmp_path)})


def test_endpoints_parse_from_text_or_lists() -> None:
    assert rpc.parse_endpoints("127.0.0.1:50052, 10.0.0.2:7000") == ("127.0.0.1:50052", "10.0.0.2:7000")
    assert rpc.parse_endpoints(["gpu-box:50052"]) == ("gpu-box:50052",)
    assert rpc.parse_endpoints(None) == () and rpc.parse_endpoints("") == ()
    for bad, message in (("127.0.0.1", "not host:port"), ("h:0", "not host:port"), ("h:99999", "not host:port"),
                         ("[::1]:5", "IPv4 only"), ("a:1,a:1", "twice")):
        with pytest.raises(ConfigError, match=message):
            rpc.parse_endpoints(bad)


def test_rpc_is_a_flag_an_env_var_a_config_key_and_a_per_model_setting(tmp_path: Path) -> None:
    assert load_settings({"rpc": "127.0.0.1:1,127.0.0.1:2"}, {}).rpc == ("127.0.0.1:1", "127.0.0.1:2")
    assert load_settings({}, {"KRONK_RPC": "127.0.0.1:3"}).pool_settings().overrides["rpc"] == ("127.0.0.1:3",)
    config = tmp_path / "kronk.yaml"
    config.write_text("rpc: [127.0.0.1:4]\n")
    assert load_settings({"config": str(config)}, {}).rpc == ("127.0.0.1:4",)
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  big-model:\n    rpc: 127.0.0.1:5,127.0.0.1:6\n")
    pool = load_settings({"model_config": str(models)}, {}).pool_settings()
    assert rpc.parse_endpoints(pool.settings_for("big-model").rpc) == ("127.0.0.1:5", "127.0.0.1:6")
    assert pool.settings_for("other").rpc is None
    with pytest.raises(ConfigError, match="not host:port"):
        load_settings({"rpc": "nowhere"}, {})


class _FakeServer:
    """A loopback listener answering HELLO as `reply` says (or not at all)."""

    def __init__(self, reply: bytes | None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.reply = reply
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        self.conns.append(conn)
        conn.recv(1 + 8 + 24)
        if self.reply is not None:
            conn.sendall(self.reply)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("reply, message", [
    (struct.pack("<Q", 28) + bytes([7, 0, 0, 0]) + bytes(24), None),
    (struct.pack("<Q", 28) + bytes([6, 1, 0, 0]) + bytes(24), "speaks protocol 6.1.0; this build needs 7.x"),
    (struct.pack("<Q", 3) + b"abc", "not a compatible ggml rpc-server"),
    (None, "did not answer within 0.5s"),
], ids=["protocol-7", "protocol-6", "not-rpc", "silent"])
def test_the_hello_probe(reply: bytes | None, message: str | None) -> None:
    server = _FakeServer(reply)
    try:
        if message is None:
            assert rpc.probe(server.endpoint, timeout=5) == (7, 0, 0)
        else:
            with pytest.raises(RPCUnavailableError, match=message):
                rpc.probe(server.endpoint, timeout=0.5)
    finally:
        server.close()


def test_an_unreachable_endpoint_is_refused_by_the_probe() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{holder.getsockname()[1]}"  # bound, not listening: connections are refused
        with pytest.raises(RPCUnavailableError, match=f"RPC server {endpoint} is unreachable"):
            rpc.probe(endpoint)
        assert rpc.is_down(endpoint)


def test_an_abort_from_ggml_rpc_is_told_apart_from_others() -> None:
    from kronk._native.abort import is_rpc_abort

    assert is_rpc_abort("/src/ggml/src/ggml-rpc/ggml-rpc.cpp:35: Remote RPC server crashed or returned malformed")
    assert is_rpc_abort("ggml-rpc.cpp:547: Failed to connect to 127.0.0.1:1")
    assert not is_rpc_abort("/src/ggml/src/ggml.c:1234: GGML_ASSERT(x) failed: ggml-rpc.cpp mentioned later")


def test_layers_left_on_the_local_cpu() -> None:
    assert rpc.offloaded_layers(30, 1) == 16  # 31 with the output layer: 16 remote, 15 local
    assert rpc.offloaded_layers(30, 2) == 21  # 21 remote, 10 local
    assert rpc.offloaded_layers(18, 2) == 13
