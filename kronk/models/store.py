"""The model store: GGUF files under `models/<provider>/<name>/` and an index of them.

`models/index.json` maps each model id to its files (all shards, an optional
projector), sizes, sha256 and the capabilities read from the GGUF metadata. Every
pull and remove updates it under a lock file; `rebuild_index()` rescans the folder
(for files added or deleted by hand), reusing hashes and metadata of unchanged files.
`resolve()` is what the engine's model pool calls to turn a name into files + config.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from filelock import FileLock

from kronk.errors import ModelNotFoundError, StoreError
from kronk.models.capabilities import CAPABILITY_NAMES, Capabilities
from kronk.models.catalog import Catalog
from kronk.models.config_keys import canonical
from kronk.models.fsutil import remove_empty_dirs
from kronk.models.gguf_info import GGUFInfo, read_gguf_info
from kronk.models.naming import (
    default_alias,
    shard_names,
    validate_model_id,
)
from kronk.models.scan import Scanner
from kronk.models.stored import IndexResult, StoredFile, StoredModel
from kronk.paths import atomic_write_text, file_lock, models_dir

log = logging.getLogger(__name__)

INDEX_VERSION = 1
INDEX_NAME = "index.json"


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """Everything the model pool needs to load a model."""

    id: str
    path: Path
    """The GGUF file (first shard of a split model; llama.cpp finds the others)."""
    projector: Path | None
    config: dict[str, Any]
    """Default ModelSettings fields from the catalog: ctx_size, slots, sampling, template."""
    capabilities: Capabilities
    files: tuple[Path, ...] = ()
    alias: str | None = None
    size: int = 0


class _Default:
    """Marks "load the shipped (plus updated) catalog" apart from an explicit None."""


DEFAULT_CATALOG = _Default()


class ModelStore:
    """Index and files of the local models; safe to use from several threads and processes.

    With no `catalog` argument the store loads the catalog itself, so `resolve()` returns
    the catalog's default config; pass `catalog=None` for a store that ignores it.
    """

    def __init__(self, root: Path | None = None, catalog: Catalog | None | _Default = DEFAULT_CATALOG) -> None:
        self.root = Path(root) if root is not None else models_dir()
        if isinstance(catalog, _Default):
            catalog = Catalog.load()
        self.catalog: Catalog | None = catalog
        self._path_info: dict[tuple[tuple[str, int, int], ...], GGUFInfo] = {}
        self._cache_lock = threading.Lock()

    # --- layout ------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    def model_dir(self, model_id: str) -> Path:
        provider, name = validate_model_id(model_id)
        return self.root / provider / name

    def staging_dir(self, model_id: str) -> Path:
        """Where a pull keeps `.part` files: inside the models folder (same disk, so renames
        are atomic) but hidden, so no half-downloaded file ever sits in a model folder."""
        provider, name = validate_model_id(model_id)
        return self.root / ".staging" / provider / name

    def pull_lock(self, model_id: str) -> FileLock:
        provider, name = validate_model_id(model_id)
        return file_lock(self.root / ".locks" / f"{provider}--{name}.lock")

    def _index_lock(self) -> FileLock:
        return file_lock(self.root / ".locks" / "index.lock")

    # --- reading -----------------------------------------------------------

    def _load(self) -> dict[str, StoredModel]:
        try:
            text = self.index_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
            if data.get("version") != INDEX_VERSION:
                raise ValueError(f"unsupported index version {data.get('version')!r}")
            models = [replace(StoredModel.from_dict(entry), root=self.root) for entry in data["models"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"model index {self.index_path} is unreadable ({exc}); run `kronk model index`") from exc
        return {m.id: m for m in models}

    def _save(self, models: dict[str, StoredModel]) -> None:
        data = {"version": INDEX_VERSION, "models": [models[k].to_dict() for k in sorted(models)]}
        atomic_write_text(self.index_path, json.dumps(data, indent=2) + "\n")

    def list(self) -> list[StoredModel]:
        return sorted(self._load().values(), key=lambda m: m.id.lower())

    def find(self, model: str) -> StoredModel | None:
        """By id, alias (both case-insensitive), or a catalog alias of a stored id."""
        models = self._load()
        if model in models:
            return models[model]
        wanted = model.lower()
        for candidate in models.values():
            if candidate.id.lower() == wanted or (candidate.alias or "").lower() == wanted:
                return candidate
        if self.catalog is not None:
            entry = self.catalog.find(model)
            if entry is not None and entry.id in models:
                return models[entry.id]
        return None

    def get(self, model: str) -> StoredModel:
        found = self.find(model)
        if found is None:
            raise ModelNotFoundError(model, self._not_found_message(model))
        return found

    def _not_found_message(self, model: str) -> str:
        if self.catalog is not None and self.catalog.find(model) is not None:
            return f"model {model!r} is in the catalog but not downloaded; run `kronk catalog pull {model}`"
        return f"model {model!r} not found; see `kronk model list`"

    def path_of(self, stored: StoredFile) -> Path:
        return self.root / stored.path

    # --- resolving ---------------------------------------------------------

    def _file_named(self, model: str) -> Path | None:
        """The .gguf file `model` names as a path, or None when it names a stored model instead."""
        try:
            candidate = Path(model).expanduser()
            if not (model.lower().endswith(".gguf") or os.sep in model and candidate.exists()):
                return None
            if candidate.is_file():
                return candidate.resolve()
        except (RuntimeError, ValueError, OSError):  # "~nobody", a NUL byte, a name too long: no such file
            return None
        if self.find(model) is None:
            raise ModelNotFoundError(model, f"model file {model!r} does not exist")
        return None

    def resolve(self, model: str) -> ResolvedModel:
        """Turn an id, alias or path to a .gguf file into files + config + capabilities."""
        if not model or not model.strip():
            raise ModelNotFoundError(model, "no model given")
        path = self._file_named(model)
        if path is not None:
            return self._resolve_path(path)
        stored = self.get(model)
        paths = tuple(self.root / f.path for f in stored.files)
        missing = [str(p) for p in paths if not p.is_file()]
        projector = self.root / stored.projector.path if stored.projector else None
        if projector is not None and not projector.is_file():
            missing.append(str(projector))
        if missing:
            raise ModelNotFoundError(
                model, f"files of model {stored.id!r} are missing ({', '.join(missing)}); run `kronk model index`"
            )
        config: dict[str, Any] = {}
        capabilities = stored.capabilities
        entry = self.catalog.find(stored.id) if self.catalog is not None else None
        if entry is not None:
            config = entry.model_config()
        config.update(canonical(stored.config or {}))
        if entry is not None:
            capabilities = _with_catalog(capabilities, entry.capabilities, has_projector=projector is not None,
                                         has_template=bool(config.get("template")))
        return ResolvedModel(id=stored.id, path=paths[0], projector=projector, config=config,
                             capabilities=capabilities, files=paths, alias=stored.alias, size=stored.size)

    def _resolve_path(self, path: Path) -> ResolvedModel:
        """A GGUF given by path: an indexed model if it is one, else read once and cached.

        The pool resolves on every request, so a path must not mean re-reading metadata.
        """
        for stored in self.list():
            if (self.root / stored.files[0].path).resolve() == path:
                return self.resolve(stored.id)
        names = shard_names(path.name)
        files = tuple(path.parent / n for n in names)
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise ModelNotFoundError(str(path), f"split model {path.name} is missing shards: {', '.join(missing)}")
        stats = [p.stat() for p in files]
        key = tuple((str(p), st.st_size, st.st_mtime_ns) for p, st in zip(files, stats, strict=False))
        with self._cache_lock:
            info = self._path_info.get(key)
        if info is None:
            info = read_gguf_info(list(files))
            with self._cache_lock:
                self._path_info[key] = info
        return ResolvedModel(id=str(path), path=files[0], projector=None, config={},
                             capabilities=info.capabilities(), files=files, size=sum(st.st_size for st in stats))

    # --- writing -----------------------------------------------------------

    def register(
        self,
        model_id: str,
        files: Sequence[Path],
        *,
        info: GGUFInfo,
        sha256: dict[str, str],
        projector: Path | None = None,
        projector_info: GGUFInfo | None = None,
        source: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> StoredModel:
        """Add (or replace) the entry of files that are already in place under the store."""
        validate_model_id(model_id)
        stored_files = tuple(self._stored_file(p, sha256.get(p.name)) for p in files)
        stored_projector = self._stored_file(projector, sha256.get(projector.name)) if projector else None
        with self._index_lock():
            models = self._load()
            alias = self._pick_alias(model_id, models)
            entry = StoredModel(
                id=model_id, alias=alias, files=stored_files, info=info,
                capabilities=info.capabilities(projector_info), projector=stored_projector,
                projector_info=projector_info, source=source, added_at=time.time(), config=config or None,
                root=self.root,
            )
            models[model_id] = entry
            self._save(models)
        return entry

    def install(
        self,
        model_id: str,
        staged: Mapping[str, Path],
        *,
        model_names: Sequence[str],
        projector: str | None,
        info: GGUFInfo,
        sha256: dict[str, str],
        projector_info: GGUFInfo | None,
        source: dict[str, Any] | None,
        config: dict[str, Any] | None,
    ) -> StoredModel:
        """Move finished files (final name → staged path) into the model's folder and register
        `model_names` (plus `projector`). Any failure takes the moved files and emptied folders
        away again, so the store never holds half a model."""
        target = self.model_dir(model_id)
        target.mkdir(parents=True, exist_ok=True)
        moved: list[Path] = []
        try:
            for name, path in staged.items():
                os.replace(path, target / name)
                moved.append(target / name)
            return self.register(
                model_id, [target / n for n in model_names], info=info, sha256=sha256,
                projector=target / projector if projector else None, projector_info=projector_info,
                source=source, config=config,
            )
        except BaseException:
            for path in moved:
                path.unlink(missing_ok=True)
            remove_empty_dirs(target, self.root)
            raise

    def _stored_file(self, path: Path, sha: str | None) -> StoredFile:
        stat = path.stat()
        return StoredFile(path=path.relative_to(self.root).as_posix(), size=stat.st_size,
                          sha256=sha, mtime_ns=stat.st_mtime_ns)

    def _pick_alias(self, model_id: str, models: dict[str, StoredModel]) -> str | None:
        taken = {m.alias.lower() for m in models.values() if m.alias and m.id != model_id}
        taken |= {m.id.lower() for m in models.values() if m.id != model_id}
        candidates = []
        if self.catalog is not None:
            entry = self.catalog.find(model_id)
            if entry is not None and entry.id == model_id and entry.alias:
                candidates.append(entry.alias)
        candidates.append(default_alias(model_id))
        for alias in candidates:
            if alias.lower() not in taken:
                return alias
        return None

    def remove(self, model: str) -> StoredModel:
        """Delete a model's files and its index entry."""
        with self._index_lock():
            models = self._load()
            stored = self.find(model)
            if stored is None or stored.id not in models:
                raise ModelNotFoundError(model, self._not_found_message(model))
            paths = [self.root / f.path for f in stored.files]
            if stored.projector is not None and not self._shared_projector(stored, models):
                paths.append(self.root / stored.projector.path)
            for path in paths:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
            for folder in {p.parent for p in paths}:
                remove_empty_dirs(folder, self.root)
            del models[stored.id]
            self._save(models)
        return stored

    @staticmethod
    def _shared_projector(stored: StoredModel, models: dict[str, StoredModel]) -> bool:
        assert stored.projector is not None
        return any(m.projector and m.projector.path == stored.projector.path
                   for m in models.values() if m.id != stored.id)

    # --- rebuilding --------------------------------------------------------

    def rebuild_index(self) -> IndexResult:
        """Rescan the models folder and rewrite the index to match what is on disk."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._index_lock():
            try:
                old = self._load()
            except StoreError:
                old = {}
            result = Scanner(self.root, old, self._pick_alias).scan()
            models = {m.id: m for m in result.models}
            self._save(models)
        result.models.sort(key=lambda m: m.id.lower())
        return result


def _with_catalog(found: Capabilities, curated: Capabilities, *, has_projector: bool,
                  has_template: bool) -> Capabilities:
    """GGUF facts plus what the catalog knows; media needs a projector on disk."""
    merged = found.union(curated)
    flags = {name: getattr(merged, name) for name in CAPABILITY_NAMES}
    if not has_projector:
        flags["vision"] = flags["audio"] = False
    if has_template and merged.completion:
        flags["chat"] = True
    return Capabilities(tool_format=merged.tool_format, **flags)
