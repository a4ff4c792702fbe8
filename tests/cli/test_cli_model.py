"""`kronk model ...`: output and errors, on local files and through a real server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kronk.cli.main import cli
from kronk.paths import models_dir
from tests.manage.fakehub import (  # noqa: F401  (fixtures)
    FakeHub,
    RunningServer,
    hub,
    management_server,
    no_server,
    payloads,
)

REPO = "tiny-org/Tiny-Chat-GGUF"


def kronk(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def place(payload: Path, *relative: str) -> Path:
    target = models_dir().joinpath(*relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(payload, target)
    return target


def failed(result: Result, text: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Error:" in result.stderr and text in result.stderr
    assert "Traceback" not in result.output


# --- local files (no server) -------------------------------------------------------


def test_list_without_models_notes_the_fallback(no_server: str) -> None:
    result = kronk("model", "list")
    assert result.exit_code == 0
    assert f"no server at {no_server}; working on the local files" in result.stderr
    assert "no models installed" in result.stderr


def test_index_then_list_and_show(no_server: str, payloads: dict[str, Path]) -> None:
    place(payloads["chat"], "acme", "tiny-chat", "tiny-chat.gguf")
    place(payloads["embed"], "acme", "tiny-embed", "tiny-embed.gguf")
    (models_dir() / "acme" / "broken").mkdir()
    (models_dir() / "acme" / "broken" / "broken.gguf").write_bytes(b"nope")

    result = kronk("model", "index", "--local")
    assert result.exit_code == 0
    assert "indexed 2 model(s)" in result.stdout and "acme/tiny-embed" in result.stdout
    assert "broken.gguf" in result.stderr and "warning" in result.stderr

    listed = kronk("model", "list", "--local")
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "ALIAS", "SIZE", "QUANT", "PARAMS", "CONTEXT", "CAPABILITIES"]
    assert lines[1].split()[:2] == ["acme/tiny-chat", "tiny-chat"]
    assert lines[1].split()[-1] == "chat,completion" and lines[2].split()[-1] == "embedding"

    shown = kronk("model", "show", "tiny-chat", "--local")
    assert shown.exit_code == 0
    for expected in ("architecture", "llama", "quantization", "F32", "context length", "2048",
                     "capabilities", "chat, completion", "chat template", "tool format"):
        assert expected in shown.stdout

    data = json.loads(kronk("model", "show", "acme/tiny-embed", "--local", "--json").stdout)
    assert data["capabilities"]["embedding"] and data["metadata"]["pooling"] == "mean"
    assert json.loads(kronk("model", "list", "--local", "--json").stdout)["object"] == "list"


def test_show_and_remove_unknown_model(no_server: str) -> None:
    failed(kronk("model", "show", "nobody/nothing", "--local"), "not found")
    failed(kronk("model", "remove", "nobody/nothing", "--local"), "not found")
    failed(kronk("model", "show", "smollm2", "--local"), "kronk catalog pull smollm2")


def test_pull_progress_result_and_remove(no_server: str, hub: FakeHub, payloads: dict[str, Path]) -> None:
    hub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", payloads["chat"].read_bytes())
    result = kronk("model", "pull", f"{REPO}:Q8_0")
    assert result.exit_code == 0, result.output
    assert "pulled tiny-org/Tiny-Chat-Q8_0" in result.stdout
    assert "get Tiny-Chat-Q8_0.gguf" in result.stderr  # the progress bar

    again = kronk("model", "pull", f"{REPO}:Q8_0", "--json")
    assert json.loads(again.stdout)["status"] == "exists"

    removed = kronk("model", "remove", "tiny-org/Tiny-Chat-Q8_0")
    assert "removed tiny-org/Tiny-Chat-Q8_0" in removed.stdout
    assert not (models_dir() / "tiny-org").exists()


def test_pull_errors(no_server: str, hub: FakeHub, payloads: dict[str, Path]) -> None:
    failed(kronk("model", "pull", "ftp://example.com/x.gguf", "--local"), "only http and https")
    failed(kronk("model", "pull", "https://example.com/notes.txt", "--local"), ".gguf")
    failed(kronk("model", "pull", "nobody/Nothing-GGUF:Q4_K_M", "--local"), "no Hugging Face repo")
    failed(kronk("model", "pull", f"{REPO}:Q8_0", "--projector", "not-a-url", "--local"), "projector")
    hub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", payloads["chat"].read_bytes(),
                 pointer_size=shutil.disk_usage("/").free * 2)
    failed(kronk("model", "pull", f"{REPO}:Q8_0", "--local"), "not enough disk space")
    hub.repos[REPO]["Tiny-Chat-Q8_0.gguf"].pointer_size = None
    hub.repos[REPO]["Tiny-Chat-Q8_0.gguf"].pointer_sha = "0" * 64
    failed(kronk("model", "pull", f"{REPO}:Q8_0", "--local"), "does not match")


def test_server_required_but_not_running(no_server: str) -> None:
    failed(kronk("model", "list", "--remote"), f"no Kronk server at {no_server}")
    failed(kronk("model", "ps"), f"no Kronk server at {no_server}")
    result = kronk("model", "list", "--local", "--remote")
    assert result.exit_code == 2 and "exclude each other" in result.stderr


# --- through a running server ------------------------------------------------------


def test_commands_go_through_the_server(management_server: RunningServer, hub: FakeHub,
                                        payloads: dict[str, Path]) -> None:
    hub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", payloads["chat"].read_bytes())
    result = kronk("model", "pull", hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf"))
    assert result.exit_code == 0, result.output
    assert "no server" not in result.stderr
    assert "pulled tiny-org/Tiny-Chat-Q8_0" in result.stdout

    listed = kronk("model", "list", "--remote")
    assert "tiny-org/Tiny-Chat-Q8_0" in listed.stdout
    shown = kronk("model", "show", "tiny-org/Tiny-Chat-Q8_0")
    assert "llama" in shown.stdout and "chat, completion" in shown.stdout
    failed(kronk("model", "show", "nobody/nothing"), "not found")
    failed(kronk("model", "pull", "ftp://x/y.gguf"), "only http and https")

    place(payloads["fim"], "acme", "coder", "coder.gguf")
    indexed = kronk("model", "index")
    assert "indexed 2 model(s)" in indexed.stdout

    removed = kronk("model", "remove", "acme/coder")
    assert "removed acme/coder" in removed.stdout
    assert management_server.pool.unloaded == ["acme/coder"]


def test_ps_table_and_json(management_server: RunningServer) -> None:
    result = kronk("model", "ps")
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == ["ID", "KIND", "SIZE", "CONTEXT", "SLOTS", "ACTIVE", "QUEUED", "IDLE", "UNLOADS", "IN"]
    assert row.split() == ["acme/tiny-chat", "chat", "537.0", "KB", "2048", "4", "1", "2", "1m15s", "3m45s"]
    data = json.loads(kronk("model", "ps", "--json").stdout)
    assert data["data"][0]["active_streams"] == 1


@pytest.mark.parametrize("args", [["model", "pull"], ["model", "show"], ["model", "remove"]])
def test_missing_arguments_are_usage_errors(args: list[str]) -> None:
    result = kronk(*args)
    assert result.exit_code == 2 and "Missing argument" in result.stderr
