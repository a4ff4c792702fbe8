"""`kronk server start -d / stop / logs` end to end: a real detached server on a free port."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kronk.cli.main import cli
from kronk.server import process

pytestmark = pytest.mark.requires_libs


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["server", *args], catch_exceptions=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stop_after() -> Iterator[None]:
    """Never leave a detached server behind, whatever the test did."""
    yield
    record = process.read_record()
    if record is not None:
        process.stop_process(record.pid, timeout=10, force=True)


def test_start_detached_refuse_second_logs_stop(lib_dir: Path, tiny: dict[str, Path], stop_after: None) -> None:
    port = free_port()
    args = ["start", "-d", "--model", str(tiny["chat"]), "--port", str(port), "--threads", "1", "--ctx-size",
            "1024", "--slots", "2"]
    started = run(*args)
    assert started.exit_code == 0, started.output
    assert f"ready at http://127.0.0.1:{port}" in started.output
    record = process.read_record()
    assert record is not None and record.url == f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/readiness") as response:
        assert json.loads(response.read())["status"] == "ready"

    again = run(*args)
    assert again.exit_code == 1
    assert "already running" in again.output and str(record.pid) in again.output

    logs = run("logs", "-n", "200")
    assert logs.exit_code == 0
    assert "listening on" in logs.output

    stopped = run("stop")
    assert stopped.exit_code == 0
    assert f"Stopped Kronk server (pid {record.pid})" in stopped.output
    assert not process.process_alive(record.pid)
    assert not process.pid_path().exists()
    assert "shutting down" in run("logs").output
    assert "not running" in run("stop").output


def test_start_detached_reports_a_model_that_cannot_load(lib_dir: Path, tmp_path: Path, stop_after: None) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    result = run("start", "-d", "--model", str(broken), "--port", str(free_port()), "--threads", "1")
    assert result.exit_code == 1
    assert "could not load its default model" in result.output
    assert "Traceback" not in result.output
    assert process.read_record() is None


def test_bad_settings_are_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run("start", "--port", "eighty")
    assert result.exit_code == 1
    assert "--port: expected an integer" in result.output
    assert "Traceback" not in result.output
    monkeypatch.setenv("KRONK_SECURITY", "sometimes")
    result = run("start", "-d")
    assert result.exit_code == 1 and "KRONK_SECURITY" in result.output


def test_logs_without_a_log_file() -> None:
    result = run("logs")
    assert result.exit_code == 1
    assert "no log file" in result.output
