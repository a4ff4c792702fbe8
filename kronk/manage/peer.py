"""What one Kronk server tells another about a stored model: its manifest.

A manifest lists the model's files in load order (every shard of a split GGUF, then
the projector) with their sizes and sha256 from the store's index, plus the model's
config (catalog defaults and any config that came with it), so a peer can pull or
receive the model with nothing left to guess. Both directions use it: `kronk model
pull --from URL` reads it from the sender's API; `kronk push` sends it to the
receiver before the bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from kronk.models.fsutil import sha256_file
from kronk.models.naming import validate_model_id
from kronk.models.store import ModelStore, StoredFile, StoredModel
from kronk.wire import Int, WireModel, parse, pattern

PEER_API = "/v1/kronk/peer"
"""Where the peer routes live under a server's base URL."""

FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.gguf$"
"""A model file's name: one path segment, so no manifest can point outside the model folder."""

_Name = Annotated[str, pattern(FILE_NAME, "must be a plain .gguf file name (no folders)")]
_Sha = Annotated[str, StringConstraints(to_lower=True), pattern(r"^[0-9a-fA-F]{64}$", "must be 64 hex digits")]


class ManifestFile(WireModel):
    """One file of a model as a peer sends it."""

    name: _Name
    size: Annotated[Int, Field(ge=0)]
    sha256: _Sha
    role: Literal["model", "projector"] = "model"


class Manifest(WireModel):
    """A model's files (shards in order, then its projector) and the config that travels with it."""

    id: Annotated[str, pattern(r"^[^/\s]+/[^/\s]+$", "must be a model id like provider/name")]
    files: Annotated[list[ManifestFile], Field(min_length=1, max_length=1000)]
    config: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] | None = None
    """How the sender got the model (kept in the receiver's index for the record)."""

    def model_files(self) -> list[ManifestFile]:
        return [f for f in self.files if f.role == "model"]

    def projector(self) -> ManifestFile | None:
        return next((f for f in self.files if f.role == "projector"), None)

    def total(self) -> int:
        return sum(f.size for f in self.files)

    def checked(self) -> Manifest:
        """Refuse what the schema cannot say: a bad id, duplicate names, no model file, two projectors."""
        from kronk.errors import InvalidRequestError

        try:
            validate_model_id(self.id)
        except Exception as exc:
            raise InvalidRequestError(f"manifest id {self.id!r}: {exc}", param="id") from None
        names = [f.name for f in self.files]
        if len(set(names)) != len(names):
            raise InvalidRequestError("manifest names a file twice", param="files")
        if not self.model_files():
            raise InvalidRequestError("manifest has no model file", param="files")
        if len(self.files) - len(self.model_files()) > 1:
            raise InvalidRequestError("manifest has more than one projector", param="files")
        return self


def read_manifest(data: object) -> Manifest:
    """A manifest from JSON, validated (400 on anything off)."""
    return parse(Manifest, data).checked()


def build_manifest(store: ModelStore, model: str) -> Manifest:
    """The manifest of a stored model; a file the index has no sha256 for is hashed now.

    The config is what the model loads with here: the catalog's defaults for its id,
    then the config that came with it. Blocking (may hash): call from a thread.
    """
    stored = store.get(model)
    files = [_entry(store, f, "model") for f in stored.files]
    if stored.projector is not None:
        files.append(_entry(store, stored.projector, "projector"))
    entry = store.catalog.find(stored.id) if store.catalog is not None else None
    config = entry.model_config() if entry is not None and entry.id == stored.id else {}
    config.update(stored.config or {})
    return Manifest(id=stored.id, files=files, config=config, source=stored.source)


def local_paths(store: ModelStore, stored: StoredModel) -> dict[str, Path]:
    """A stored model's files by the names its manifest gives them."""
    files = [*stored.files, *([stored.projector] if stored.projector is not None else [])]
    return {store.path_of(f).name: store.path_of(f) for f in files}


def _entry(store: ModelStore, stored: StoredFile, role: Literal["model", "projector"]) -> ManifestFile:
    path = store.path_of(stored)
    sha = stored.sha256 or sha256_file(path)
    return ManifestFile(name=path.name, size=path.stat().st_size, sha256=sha, role=role)


def same_files(stored: StoredModel, manifest: Manifest) -> bool:
    """Whether an installed model already holds exactly the manifest's files."""
    have = [(f.path.rsplit("/", 1)[-1], f.size, f.sha256) for f in stored.files]
    if stored.projector is not None:
        have.append((stored.projector.path.rsplit("/", 1)[-1], stored.projector.size, stored.projector.sha256))
    return sorted(have) == sorted((f.name, f.size, f.sha256) for f in manifest.files)
