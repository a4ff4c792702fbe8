"""The receiving end of `kronk push`: resumable, verified, atomic uploads into the store.

An upload is a folder `models/.uploads/<upload id>/` holding the manifest and one
`<name>.part` per file. The id is a hash of the manifest, so a sender that comes back
(after a cut connection, or after this server was killed and restarted) lands in the
same folder and is told how many bytes of each file are already here. Chunks must
start exactly where the part file ends and carry their sha256; a chunk whose bytes do
not match is refused before anything is written. `commit` hashes every whole file
against the manifest, reads the GGUF metadata, renames the files into the model
folder and only then writes the index entry — so the index never names a model whose
files are not all verified and in place, whatever moment the process dies at.
Blocking: call from a thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kronk.errors import (
    InvalidRequestError,
    ModelLoadError,
    StoreError,
    UploadChecksumError,
    UploadNotFoundError,
    UploadOffsetError,
)
from kronk.manage.peer import Manifest, ManifestFile, read_manifest, same_files
from kronk.models.fsutil import check_free_space, sha256_file
from kronk.models.gguf_info import read_gguf_info
from kronk.models.store import ModelStore, StoredModel
from kronk.paths import atomic_write_text

UPLOADS = ".uploads"
MANIFEST = "manifest.json"
STALE_SECONDS = 7 * 24 * 3600.0
"""An upload nobody touched for this long is deleted when the next one begins."""
MAX_CHUNK = 64 << 20
"""The largest chunk one request may carry (the receiver holds it in memory to check it)."""


@dataclass(frozen=True, slots=True)
class UploadState:
    upload_id: str
    manifest: Manifest
    received: dict[str, int]
    status: str = "ready"
    """`ready` (send the rest, then commit) or `exists` (the same files are installed already)."""

    def to_dict(self) -> dict[str, Any]:
        return {"upload_id": self.upload_id, "status": self.status, "model": self.manifest.id,
                "files": [{"name": f.name, "size": f.size, "received": self.received.get(f.name, 0)}
                          for f in self.manifest.files]}


def upload_id(manifest: Manifest) -> str:
    """The same manifest always gives the same id: what makes a push resumable across restarts."""
    canonical = json.dumps({"id": manifest.id, "files": [[f.name, f.size, f.sha256, f.role] for f in manifest.files]},
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class UploadStore:
    """Upload folders of one model store."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    @property
    def root(self) -> Path:
        return self.store.root / UPLOADS

    def _folder(self, upload: str) -> Path:
        if len(upload) != 32 or any(c not in "0123456789abcdef" for c in upload):
            raise UploadNotFoundError(f"no upload {upload!r} on this server (ids are 32 hex digits); begin it again")
        return self.root / upload

    # --- begin -------------------------------------------------------------

    def begin(self, manifest: Manifest, *, force: bool = False) -> UploadState:
        """Open (or reopen) the upload of `manifest`; say what is already here."""
        upload = upload_id(manifest)
        installed = self.store.find(manifest.id)
        if installed is not None and installed.id == manifest.id and not force:
            if same_files(installed, manifest):
                return UploadState(upload, manifest, {f.name: f.size for f in manifest.files}, "exists")
            raise StoreError(f"{manifest.id} is installed here with other files; push with --force to replace it")
        self._sweep(manifest.id, keep=upload)
        folder = self.root / upload
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / MANIFEST).exists():
            atomic_write_text(folder / MANIFEST, manifest.model_dump_json())
        os.utime(folder)
        for f in manifest.files:
            (folder / f"{f.name}.part").touch()
        received = self._received(folder, manifest)
        missing = sum(f.size - received[f.name] for f in manifest.files)
        if missing > 0:
            check_free_space(self.store.root, missing, manifest.id)
        return UploadState(upload, manifest, received)

    def state(self, upload: str) -> UploadState:
        folder = self._folder(upload)
        manifest = self._manifest(folder, upload)
        return UploadState(upload, manifest, self._received(folder, manifest))

    @staticmethod
    def _received(folder: Path, manifest: Manifest) -> dict[str, int]:
        received = {}
        for f in manifest.files:
            part = folder / f"{f.name}.part"
            length = part.stat().st_size if part.exists() else 0
            if length > f.size:  # cannot be ours: start that file over
                part.unlink()
                length = 0
            received[f.name] = length
        return received

    def _sweep(self, model_id: str, keep: str) -> None:
        """Drop older uploads of the same model (another manifest) and uploads left for a week."""
        if not self.root.is_dir():
            return
        now = time.time()
        for folder in self.root.iterdir():
            if folder.name == keep or not folder.is_dir():
                continue
            try:
                stale = now - folder.stat().st_mtime > STALE_SECONDS
                same = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("id") == model_id
            except (OSError, ValueError, AttributeError):
                stale, same = True, False
            if stale or same:
                shutil.rmtree(folder, ignore_errors=True)

    def _manifest(self, folder: Path, upload: str) -> Manifest:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UploadNotFoundError(f"no upload {upload} on this server (it was committed, swept or never "
                                      "begun); begin it again") from None
        except ValueError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise StoreError(f"upload {upload} was unreadable ({exc}) and is dropped; begin it again") from None
        return read_manifest(data)

    # --- chunks ------------------------------------------------------------

    def file_of(self, upload: str, name: str) -> tuple[Path, ManifestFile]:
        folder = self._folder(upload)
        manifest = self._manifest(folder, upload)
        entry = next((f for f in manifest.files if f.name == name), None)
        if entry is None:
            raise InvalidRequestError(f"upload {upload} has no file {name!r}", param="name")
        return folder / f"{name}.part", entry

    def write(self, upload: str, name: str, offset: int, data: bytes, sha256: str) -> int:
        """Append a verified chunk at `offset` (where the part file ends); return the new length."""
        part, entry = self.file_of(upload, name)
        if not data:
            raise InvalidRequestError("empty chunk: the body must hold the bytes to append")
        length = part.stat().st_size if part.exists() else 0
        if offset != length:
            raise UploadOffsetError(f"{name}: this server holds {length} bytes; resume from there, not {offset}")
        if offset + len(data) > entry.size:
            raise InvalidRequestError(f"{name}: chunk ends at {offset + len(data)}, past the file's {entry.size} bytes",
                                      param="offset")
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256.lower():
            raise UploadChecksumError(f"{name}: chunk at {offset} has sha256 {actual}, not the {sha256.lower()} "
                                      "sent with it; nothing was written")
        with part.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return length + len(data)

    # --- commit ------------------------------------------------------------

    def commit(self, upload: str, *, source_url: str | None = None) -> StoredModel:
        """Verify every file, move them into the model folder, then index the model."""
        folder = self._folder(upload)
        manifest = self._manifest(folder, upload)
        with self.store.pull_lock(manifest.id):
            manifest = self._manifest(folder, upload)  # a commit that held the lock before us took it
            for f in manifest.files:
                self._complete(folder, f)
            for f in manifest.files:
                self._verify(folder, f)
            staged = [folder / f"{f.name}.part" for f in manifest.model_files()]
            projector = manifest.projector()
            try:
                info = read_gguf_info(staged)
                projector_info = read_gguf_info(folder / f"{projector.name}.part") if projector else None
            except ModelLoadError as exc:
                shutil.rmtree(folder, ignore_errors=True)
                raise InvalidRequestError(f"{manifest.id}: the pushed files are not a usable GGUF model ({exc})") \
                    from None
            if info.is_projector:
                shutil.rmtree(folder, ignore_errors=True)
                raise InvalidRequestError(f"{manifest.model_files()[0].name} is a projector, not a model")
            source = {"kind": "peer", **({"url": source_url} if source_url else {}), "origin": manifest.source}
            stored = self.store.install(
                manifest.id, {f.name: folder / f"{f.name}.part" for f in manifest.files},
                model_names=[f.name for f in manifest.model_files()], projector=projector.name if projector else None,
                info=info, sha256={f.name: f.sha256 for f in manifest.files}, projector_info=projector_info,
                source=source, config=manifest.config,
            )
        shutil.rmtree(folder, ignore_errors=True)
        return stored

    @staticmethod
    def _complete(folder: Path, entry: ManifestFile) -> None:
        """Every byte is here (checked for all files before hashing any)."""
        part = folder / f"{entry.name}.part"
        length = part.stat().st_size if part.exists() else 0
        if length != entry.size:
            raise StoreError(f"{entry.name}: {length} of {entry.size} bytes received; send the rest before commit")

    @staticmethod
    def _verify(folder: Path, entry: ManifestFile) -> None:
        part = folder / f"{entry.name}.part"
        try:
            actual = sha256_file(part)
        except FileNotFoundError:
            raise StoreError(f"{entry.name} went missing from the upload; begin it again") from None
        if actual != entry.sha256:
            part.unlink()
            raise UploadChecksumError(f"{entry.name}: the whole file's sha256 is {actual}, not {entry.sha256}; "
                                      "it was dropped, send it again")
