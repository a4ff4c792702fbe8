"""The model store: index rebuilds from hand-placed files, remove, and resolve."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from kronk.errors import CapabilityError, ModelNotFoundError, StoreError
from kronk.models.catalog import Catalog
from kronk.models.store import ModelStore
from tests.manage.fakehub import sha256

CATALOG = """
version: 1
models:
  - id: acme/tiny-chat
    alias: tc
    category: text-generation
    capabilities: [chat, completion, tools]
    tool_format: hermes
    files: [tiny-chat.gguf]
    sources: [{hf: acme/tiny, files: [tiny-chat.gguf]}]
    config: {context_size: 512, slots: 2, sampling: {temperature: 0.3}, template: "{{ messages }}"}
  - id: acme/not-downloaded
    alias: nd
    category: text-generation
    capabilities: [chat]
    files: [nd.gguf]
    sources: [{hf: acme/nd, files: [nd.gguf]}]
"""


def place(store: ModelStore, source: Path, *relative: str) -> Path:
    target = store.root.joinpath(*relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def test_rebuild_indexes_files_added_by_hand(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    chat = place(store, payloads["chat"], "acme", "tiny-chat", "tiny-chat.gguf")
    place(store, payloads["embed"], "loose-embed.gguf")
    place(store, payloads["fim"], "coders", "tiny-fim.gguf")

    result = store.rebuild_index()

    assert result.problems == []
    assert [m.id for m in result.models] == ["acme/tiny-chat", "coders/tiny-fim", "local/loose-embed"]
    by_id = {m.id: m for m in store.list()}
    assert by_id["acme/tiny-chat"].files[0].sha256 == sha256(chat.read_bytes())
    assert by_id["acme/tiny-chat"].alias == "tiny-chat"
    assert by_id["acme/tiny-chat"].capabilities.chat
    assert by_id["local/loose-embed"].capabilities.embedding
    assert not by_id["local/loose-embed"].capabilities.chat
    assert by_id["coders/tiny-fim"].capabilities.fim
    index = json.loads(store.index_path.read_text())
    assert index["version"] == 1 and len(index["models"]) == 3


def test_rebuild_drops_deleted_files_and_rehashes_changed_ones(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    chat = place(store, payloads["chat"], "acme", "tiny-chat", "tiny-chat.gguf")
    base = place(store, payloads["base"], "acme", "tiny-base", "tiny-base.gguf")
    store.rebuild_index()

    base.unlink()
    shutil.copyfile(payloads["fim"], chat)  # replaced by hand with other bytes
    result = store.rebuild_index()

    assert [m.id for m in result.models] == ["acme/tiny-chat"]
    model = store.get("acme/tiny-chat")
    assert model.files[0].sha256 == sha256(payloads["fim"].read_bytes())
    assert model.capabilities.fim and not model.capabilities.chat


def test_rebuild_keeps_the_source_of_pulled_models(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    path = place(store, payloads["chat"], "acme", "tiny-chat", "tiny-chat.gguf")
    from kronk.models.gguf_info import read_gguf_info

    registered = store.register("acme/tiny-chat", [path], info=read_gguf_info(path),
                                sha256={path.name: sha256(path.read_bytes())}, source={"kind": "hf", "repo": "acme/x"})
    rebuilt = store.rebuild_index().models[0]
    assert rebuilt.source == {"kind": "hf", "repo": "acme/x"}
    assert rebuilt.added_at == registered.added_at


def test_split_model_and_projector_in_one_folder(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    for index in (1, 2, 3):
        place(store, payloads[f"shard{index}"], "acme", "split", payloads[f"shard{index}"].name)
    place(store, payloads["mmproj"], "acme", "split", "mmproj-split-f16.gguf")

    model = store.rebuild_index().models[0]
    assert model.id == "acme/split"
    assert len(model.files) == 3 and model.info.split_count == 3
    assert model.projector is not None and model.projector.path == "acme/split/mmproj-split-f16.gguf"
    assert model.capabilities.vision

    resolved = store.resolve("acme/split")
    assert resolved.path.name.endswith("-00001-of-00003.gguf")
    assert resolved.projector is not None and resolved.projector.name == "mmproj-split-f16.gguf"


def test_incomplete_split_model_is_reported(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    place(store, payloads["shard1"], "acme", "split", payloads["shard1"].name)
    place(store, payloads["shard3"], "acme", "split", payloads["shard3"].name)
    result = store.rebuild_index()
    assert result.models == []
    assert len(result.problems) == 1 and "00002-of-00003" in result.problems[0]


def test_unreadable_file_is_reported_not_fatal(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    place(store, payloads["chat"], "acme", "good", "good.gguf")
    broken = store.root / "acme" / "bad" / "bad.gguf"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a gguf")
    result = store.rebuild_index()
    assert [m.id for m in result.models] == ["acme/good"]
    assert "bad.gguf" in result.problems[0]


def test_staging_and_partial_files_are_not_models(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    place(store, payloads["chat"], ".staging", "acme", "x", "x.gguf")
    place(store, payloads["chat"], "acme", "x", "x.gguf.part")
    assert store.rebuild_index().models == []


def test_remove_deletes_files_folders_and_entry(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    place(store, payloads["chat"], "acme", "tiny-chat", "tiny-chat.gguf")
    place(store, payloads["mmproj"], "acme", "tiny-chat", "mmproj-tiny.gguf")
    place(store, payloads["base"], "acme", "other", "other.gguf")
    store.rebuild_index()

    removed = store.remove("tiny-chat")  # by alias
    assert removed.id == "acme/tiny-chat"
    assert not (store.root / "acme" / "tiny-chat").exists()
    assert (store.root / "acme" / "other" / "other.gguf").exists()
    assert [m.id for m in store.list()] == ["acme/other"]
    with pytest.raises(ModelNotFoundError):
        store.remove("acme/tiny-chat")


def test_resolve_by_id_alias_path_and_catalog_config(payloads: dict[str, Path]) -> None:
    catalog = Catalog.from_yaml(CATALOG)
    store = ModelStore(catalog=catalog)
    path = place(store, payloads["chat"], "acme", "tiny-chat", "tiny-chat.gguf")
    store.rebuild_index()

    for name in ("acme/tiny-chat", "ACME/Tiny-Chat", "tc"):
        resolved = store.resolve(name)
        assert resolved.id == "acme/tiny-chat"
        assert resolved.path == path
        assert resolved.projector is None
    resolved = store.resolve("tc")
    assert resolved.alias == "tc"
    assert resolved.config == {"ctx_size": 512, "slots": 2, "sampling": {"temperature": 0.3},
                               "template": "{{ messages }}"}
    assert resolved.capabilities.tools and resolved.capabilities.tool_format == "hermes"
    assert not resolved.capabilities.vision
    with pytest.raises(CapabilityError):
        resolved.capabilities.require("embedding", resolved.id, param="model")

    by_path = store.resolve(str(payloads["embed"]))
    assert by_path.path == payloads["embed"].resolve()
    assert by_path.capabilities.embedding and by_path.config == {}


def test_resolve_errors_are_model_not_found(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=Catalog.from_yaml(CATALOG))
    path = place(store, payloads["chat"], "acme", "tiny-chat", "tiny-chat.gguf")
    store.rebuild_index()

    with pytest.raises(ModelNotFoundError, match="kronk catalog pull"):
        store.resolve("nd")
    with pytest.raises(ModelNotFoundError, match="not found"):
        store.resolve("nobody/nothing")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        store.resolve("/no/such/model.gguf")
    with pytest.raises(ModelNotFoundError):
        store.resolve("")
    path.unlink()
    with pytest.raises(ModelNotFoundError, match="kronk model index"):
        store.resolve("acme/tiny-chat")


def test_corrupt_index_is_a_store_error_and_rebuild_repairs_it(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    place(store, payloads["chat"], "acme", "tiny-chat", "tiny-chat.gguf")
    store.index_path.write_text("{not json")
    with pytest.raises(StoreError, match="kronk model index"):
        store.list()
    assert [m.id for m in store.rebuild_index().models] == ["acme/tiny-chat"]


def test_alias_collisions_leave_the_second_model_without_alias(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    place(store, payloads["chat"], "one", "tiny", "tiny.gguf")
    place(store, payloads["base"], "two", "tiny", "tiny.gguf")
    models = {m.id: m for m in store.rebuild_index().models}
    assert models["one/tiny"].alias == "tiny"
    assert models["two/tiny"].alias is None


def test_index_is_written_atomically(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=None)
    place(store, payloads["chat"], "acme", "tiny-chat", "tiny-chat.gguf")
    store.rebuild_index()
    leftovers = [n for n in os.listdir(store.root) if n.endswith(".tmp")]
    assert leftovers == []


def test_resolving_a_path_reads_metadata_once(payloads: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from kronk.models import store as store_module

    reads: list[object] = []
    real = store_module.read_gguf_info
    monkeypatch.setattr(store_module, "read_gguf_info", lambda paths: reads.append(paths) or real(paths))
    store = ModelStore(catalog=None)
    for _ in range(3):
        assert store.resolve(str(payloads["fim"])).capabilities.fim
    assert len(reads) == 1


def test_resolving_the_path_of_an_indexed_model_gives_its_id(payloads: dict[str, Path]) -> None:
    store = ModelStore(catalog=Catalog.from_yaml(CATALOG))
    path = place(store, payloads["chat"], "acme", "tiny-chat", "tiny-chat.gguf")
    store.rebuild_index()
    resolved = store.resolve(str(path))
    assert resolved.id == "acme/tiny-chat" and resolved.config["ctx_size"] == 512


def test_install_moves_staged_files_in_and_a_failure_takes_them_out_again(
    payloads: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pulls and peer pushes install through one path: a model lands whole or not at all."""
    from kronk.models.gguf_info import read_gguf_info

    store = ModelStore(catalog=None)
    staged = tmp_path / "staging" / "chat.gguf.part"
    staged.parent.mkdir()
    shutil.copyfile(payloads["chat"], staged)
    info = read_gguf_info([staged])
    checksums = {"chat.gguf": sha256(payloads["chat"].read_bytes())}
    entry = dict(model_names=["chat.gguf"], projector=None, info=info, sha256=checksums, projector_info=None,
                 source={"kind": "test"}, config=None)

    def index_fails(*args: object, **kwargs: object) -> None:
        raise StoreError("the index could not be written")

    with monkeypatch.context() as patch:
        patch.setattr(store, "register", index_fails)
        with pytest.raises(StoreError):
            store.install("acme/chat", {"chat.gguf": staged}, **entry)  # type: ignore[arg-type]
    assert not store.model_dir("acme/chat").exists() and not (store.root / "acme").exists()
    assert not staged.exists()  # it was moved in, then removed with the half-installed folder

    shutil.copyfile(payloads["chat"], staged)
    stored = store.install("acme/chat", {"chat.gguf": staged}, **entry)  # type: ignore[arg-type]
    assert [f.path for f in stored.files] == ["acme/chat/chat.gguf"] and not staged.exists()
    assert store.get("acme/chat").source == {"kind": "test"}
