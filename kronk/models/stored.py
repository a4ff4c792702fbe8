"""The entries of the model index (`models/index.json`): a model's files and what they hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kronk.errors import StoreError
from kronk.models.capabilities import Capabilities
from kronk.models.gguf_info import GGUFInfo


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file of a model; `path` is relative to the models folder (POSIX form)."""

    path: str
    size: int
    sha256: str | None
    mtime_ns: int

    def key(self) -> tuple[str, int, int]:
        return (self.path, self.size, self.mtime_ns)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "mtime_ns": self.mtime_ns}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredFile:
        return cls(path=str(data["path"]), size=int(data["size"]), sha256=data.get("sha256"),
                   mtime_ns=int(data.get("mtime_ns", 0)))


@dataclass(frozen=True, slots=True)
class StoredModel:
    """An index entry: a model's files, metadata and capabilities."""

    id: str
    files: tuple[StoredFile, ...]
    info: GGUFInfo
    capabilities: Capabilities
    alias: str | None = None
    projector: StoredFile | None = None
    projector_info: GGUFInfo | None = None
    source: dict[str, Any] | None = None
    added_at: float = 0.0
    config: dict[str, Any] | None = None
    """ModelSettings defaults that came with the model (from a peer); over the catalog's."""
    root: Path | None = field(default=None, compare=False)
    """The models folder this entry was read from (not stored in the index)."""

    @property
    def path(self) -> Path:
        """Absolute path of the GGUF (first shard); needs an entry that came from a store."""
        if self.root is None:
            raise StoreError(f"model {self.id!r} is not attached to a store folder")
        return self.root / self.files[0].path

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files) + (self.projector.size if self.projector else 0)

    def to_dict(self) -> dict[str, Any]:
        """The index form (paths relative to the models folder)."""
        return {
            "id": self.id,
            "alias": self.alias,
            "files": [f.to_dict() for f in self.files],
            "projector": self.projector.to_dict() if self.projector else None,
            "info": self.info.to_dict(),
            "projector_info": self.projector_info.to_dict() if self.projector_info else None,
            "capabilities": self.capabilities.to_dict(),
            "source": self.source,
            "added_at": self.added_at,
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredModel:
        projector = data.get("projector")
        projector_info = data.get("projector_info")
        return cls(
            id=str(data["id"]),
            alias=data.get("alias"),
            files=tuple(StoredFile.from_dict(f) for f in data["files"]),
            projector=StoredFile.from_dict(projector) if projector else None,
            info=GGUFInfo.from_dict(data["info"]),
            projector_info=GGUFInfo.from_dict(projector_info) if projector_info else None,
            capabilities=Capabilities.from_dict(data.get("capabilities", {})),
            source=data.get("source"),
            added_at=float(data.get("added_at", 0.0)),
            config=data.get("config") or None,
        )

    def describe(self, root: Path) -> dict[str, Any]:
        """The API form: absolute paths, total size and a flat capability list."""
        return {
            "id": self.id,
            "object": "model",
            "alias": self.alias,
            "path": str(root / self.files[0].path),
            "files": [{**f.to_dict(), "path": str(root / f.path)} for f in self.files],
            "projector": {**self.projector.to_dict(), "path": str(root / self.projector.path)}
            if self.projector else None,
            "size": self.size,
            "metadata": self.info.to_dict(),
            "projector_metadata": self.projector_info.to_dict() if self.projector_info else None,
            "capabilities": self.capabilities.to_dict(),
            "capability_names": self.capabilities.names(),
            "source": self.source,
            "added_at": self.added_at,
        }


@dataclass(slots=True)
class IndexResult:
    models: list[StoredModel]
    problems: list[str] = field(default_factory=list)
