"""Rebuilding the model index from the files on disk (`ModelStore.rebuild_index`).

Files added or deleted by hand are found by walking the models folder; split shards are
grouped, projectors paired with their models, and the hashes and GGUF metadata of files
that did not change are reused from the old index.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from kronk.models.fsutil import sha256_file
from kronk.models.gguf_info import GGUFInfo, read_gguf_info
from kronk.models.naming import is_projector_name, model_stem, safe_segment, shard_names, split_info
from kronk.models.stored import IndexResult, StoredFile, StoredModel

AliasPicker = Callable[[str, dict[str, StoredModel]], str | None]
"""Picks the alias of a model among the others found (ModelStore._pick_alias)."""


class Scanner:
    """One rebuild pass: groups files into models, reusing cached hashes and metadata."""

    def __init__(self, root: Path, old: dict[str, StoredModel], pick_alias: AliasPicker) -> None:
        self.root = root
        self.pick_alias = pick_alias
        self.old = old
        self.file_cache: dict[tuple[str, int, int], str | None] = {}
        self.model_cache: dict[tuple[tuple[str, int, int], ...], StoredModel] = {}
        self.projector_cache: dict[tuple[str, int, int], GGUFInfo] = {}
        for model in old.values():
            for f in model.files:
                self.file_cache[f.key()] = f.sha256
            self.model_cache[tuple(f.key() for f in model.files)] = model
            if model.projector is not None and model.projector_info is not None:
                self.file_cache[model.projector.key()] = model.projector.sha256
                self.projector_cache[model.projector.key()] = model.projector_info
        self.problems: list[str] = []

    def scan(self) -> IndexResult:
        models: dict[str, StoredModel] = {}
        for folder, names in self._folders():
            for model in self._scan_folder(folder, names):
                if model.id in models:
                    self.problems.append(f"{model.files[0].path}: id {model.id!r} already used; skipped")
                    continue
                models[model.id] = model
        for model_id in list(models):
            alias = self.pick_alias(model_id, models)
            models[model_id] = replace(models[model_id], alias=alias)
        return IndexResult(models=list(models.values()), problems=self.problems)

    def _folders(self) -> Iterable[tuple[Path, list[str]]]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            ggufs = sorted(n for n in filenames if n.lower().endswith(".gguf") and not n.startswith("."))
            if ggufs:
                yield Path(dirpath), ggufs

    def _stored(self, path: Path) -> StoredFile:
        stat = path.stat()
        rel = path.relative_to(self.root).as_posix()
        key = (rel, stat.st_size, stat.st_mtime_ns)
        sha = self.file_cache.get(key)
        if sha is None:
            sha = sha256_file(path)
            self.file_cache[key] = sha
        return StoredFile(path=rel, size=stat.st_size, sha256=sha, mtime_ns=stat.st_mtime_ns)

    def _scan_folder(self, folder: Path, names: list[str]) -> list[StoredModel]:
        projectors: dict[str, tuple[StoredFile, GGUFInfo]] = {}
        groups: dict[str, list[str]] = {}
        fresh: dict[str, GGUFInfo] = {}
        for name in names:
            stored = self._stored(folder / name)
            shard = split_info(name)
            known_model = (stored.key(),) in self.model_cache
            if not known_model and (shard is None or shard[1] == 1 and is_projector_name(name)):
                info = self.projector_cache.get(stored.key()) or self._read([folder / name])
                if info is None:
                    continue
                if info.is_projector:
                    projectors[name] = (stored, info)
                    continue
                if shard is None:
                    fresh[name] = info
            groups.setdefault(model_stem(name), []).append(name)
        models = []
        for stem, members in sorted(groups.items()):
            model = self._model(folder, stem, members, projectors, fresh, single=len(groups) == 1)
            if model is not None:
                models.append(model)
        return models

    def _model(self, folder: Path, stem: str, members: list[str],
               projectors: dict[str, tuple[StoredFile, GGUFInfo]], fresh: dict[str, GGUFInfo],
               single: bool) -> StoredModel | None:
        rel = folder.relative_to(self.root).as_posix()
        if len(members) > 1 and not all(split_info(n) for n in members):
            self.problems.append(f"{rel}: several files share the name {stem!r}; skipped")
            return None
        expected = shard_names(members[0])
        missing = sorted(set(expected) - set(members))
        if missing:
            self.problems.append(f"{rel}/{stem}: split model is missing {', '.join(missing)}; skipped")
            return None
        files = tuple(self._stored(folder / n) for n in expected)
        model_id = self._id_for(folder, stem, single)
        cached = self.model_cache.get(tuple(f.key() for f in files))
        info = cached.info if cached is not None else fresh.get(expected[0]) if len(expected) == 1 else None
        if info is None:
            info = self._read([folder / n for n in expected])
            if info is None or info.is_projector:
                return None
        projector, projector_info = self._projector_for(stem, projectors)
        previous = self.old.get(model_id)
        return StoredModel(
            id=model_id, files=files, info=info, capabilities=info.capabilities(projector_info),
            projector=projector, projector_info=projector_info,
            source=previous.source if previous else {"kind": "local"},
            added_at=previous.added_at if previous else time.time(),
            config=previous.config if previous else None, root=self.root,
        )

    def _projector_for(self, stem: str, projectors: dict[str, tuple[StoredFile, GGUFInfo]]
                       ) -> tuple[StoredFile | None, GGUFInfo | None]:
        if not projectors:
            return None, None
        if len(projectors) == 1:
            return next(iter(projectors.values()))
        for name, pair in sorted(projectors.items()):
            if stem.lower() in name.lower():
                return pair
        return None, None

    def _read(self, paths: list[Path]) -> GGUFInfo | None:
        try:
            return read_gguf_info(paths)
        except Exception as exc:  # one unreadable file must not stop the rebuild
            self.problems.append(f"{paths[0].relative_to(self.root).as_posix()}: {exc}; skipped")
            return None

    def _id_for(self, folder: Path, stem: str, single: bool) -> str:
        parts = folder.relative_to(self.root).parts
        if not parts:
            return f"local/{safe_segment(stem)}"
        provider = safe_segment(parts[0])
        if len(parts) == 2 and single:
            return f"{provider}/{safe_segment(parts[1])}"
        return f"{provider}/{safe_segment(stem)}"
