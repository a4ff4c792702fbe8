"""llama.cpp builds between servers: `kronk libs --from URL`.

The sender describes the build its loader uses (`GET /v1/kronk/peer/libs`): platform
(OS, arch, processor), build number, the CPU features a native build needs, every
file with its size, sha256 and mode (from version.json), and the symlinks between
them; it serves the files (`GET /v1/kronk/peer/libs/files/{name}`). The receiver
refuses a build for another platform, or one needing CPU features it lacks, before
downloading anything; then downloads into a staging folder beside the install,
verifies every sha256, runs the binding's ABI check on the staged libraries (in a
subprocess) and only then swaps the folder in. A tampered file, a failed ABI check
or a cut-off transfer leaves the installed build as it was. Blocking: use a thread.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from kronk.errors import ConfigError, LibraryNotFoundError, LibsInstallError, PeerFileNotFoundError, StoreError
from kronk.manage.download import Downloader
from kronk.manage.libs import install as inst
from kronk.manage.libs.cpu import host_cpu_features, missing_features
from kronk.manage.libs.events import ProgressCallback, ProgressEvent, Stage, download_progress, ignore_progress
from kronk.manage.libs.install import InstallRecord
from kronk.manage.libs.manager import LibsManager
from kronk.manage.libs.platform import Platform
from kronk.manage.peer_client import PeerClient
from kronk.wire import Int, WireModel, parse, pattern

_REL = r"^(bin/)?[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$"
"""A file of an install: a name in its folder or in bin/ (nothing that climbs out)."""
_RelName = Annotated[str, pattern(_REL, "must be a file name of the install (or bin/NAME)")]


class LibsFile(WireModel):
    name: _RelName
    size: Annotated[Int, Field(ge=0)]
    sha256: Annotated[str, pattern(r"^[0-9a-f]{64}$", "must be 64 lowercase hex digits")]
    mode: Annotated[Int, Field(ge=0, le=0o777)] = 0o644


class LibsManifest(WireModel):
    """A build as a peer describes it."""

    os: str
    arch: str
    processor: str
    build: Int | None = None
    source: str = "unknown"
    cpu_features: list[str] | None = None
    """ISA flags the build may use; None: portable (a release archive)."""
    files: Annotated[list[LibsFile], Field(min_length=1, max_length=500)]
    links: dict[_RelName, str] = Field(default_factory=dict)
    """Symlinks: name -> target (a sibling, or ../NAME from bin/)."""

    def platform(self) -> Platform:
        return Platform(self.os, self.arch, self.processor)


# --- sender ----------------------------------------------------------------------------


def current_record(manager: LibsManager) -> InstallRecord:
    """The managed build this server's loader uses; an unmanaged folder has no sha256 to offer."""
    record = manager.current()
    if record is None:
        raise LibraryNotFoundError("this server has no llama.cpp libraries installed")
    if record.source == "external" or not record.files:
        raise StoreError(f"the libraries in {record.path} are not managed by Kronk (no version.json with sha256); "
                         "install them with `kronk libs` to share them")
    return record


def libs_manifest(manager: LibsManager) -> dict[str, Any]:
    """The current build's manifest (JSON). A native build without recorded CPU features
    (installed before Kronk recorded them) is described with this machine's features:
    it was built here."""
    record = current_record(manager)
    files = []
    for name, sha in sorted(record.files.items()):
        path = record.path / name
        info = path.stat()
        files.append({"name": name, "size": info.st_size, "sha256": sha, "mode": stat.S_IMODE(info.st_mode)})
    links = {}
    for path in sorted(record.path.rglob("*")):
        if path.is_symlink():
            links[path.relative_to(record.path).as_posix()] = os.readlink(path)
    features = record.cpu_features
    if features is None and record.source in ("sdist", "source"):
        features = tuple(sorted(host_cpu_features()))
    return {"os": record.platform.os, "arch": record.platform.arch, "processor": record.platform.processor,
            "build": record.build, "source": record.source,
            "cpu_features": list(features) if features is not None else None, "files": files, "links": links}


def libs_file(manager: LibsManager, name: str) -> Path:
    """A file of the current build, by the name its manifest gives it."""
    record = current_record(manager)
    if name not in record.files:
        raise PeerFileNotFoundError(f"the installed build has no file {name!r}")
    return record.path / name


# --- receiver --------------------------------------------------------------------------


def install_from_peer(manager: LibsManager, client: PeerClient, *, progress: ProgressCallback | None = None,
                      downloader: Downloader | None = None) -> InstallRecord:
    """Install the peer's build here, replacing this platform's install only once it is verified."""
    progress = progress or ignore_progress
    source = f"peer {client.base_url}"
    progress(ProgressEvent(Stage.ATTEMPT, f"reading the llama.cpp build of {client.base_url}", source=source))
    manifest = parse(LibsManifest, client.call("GET", "/libs"))
    platform = check_fits(manager, manifest)
    target = manager.target_dir(platform)
    if manager._external_at(target, platform) is not None:
        raise ConfigError(f"KRONK_LIB_PATH={target} holds libraries Kronk does not manage; unset it to install")
    downloader = downloader or Downloader(client.session)
    with inst.install_lock(target):
        inst.recover(target)
        staging = inst.staging_dir(target)
        try:
            for entry in manifest.files:
                dest = staging / entry.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                downloader.fetch(client.url(f"/libs/files/{entry.name}"), dest, size=entry.size,
                                 sha256=entry.sha256, headers=client.headers,
                                 on_bytes=download_progress(progress, entry.name, source))
                dest.chmod(entry.mode | 0o400)
            _make_links(staging, manifest.links)
            record = InstallRecord(path=staging, platform=platform, build=manifest.build, source="peer",
                                   installed_at=inst.now_utc(), files=inst.file_digests(staging),
                                   cpu_features=tuple(manifest.cpu_features)
                                   if manifest.cpu_features is not None else None)
            if dict(record.files) != {f.name: f.sha256 for f in manifest.files}:
                raise LibsInstallError("the staged files do not match the peer's list")
            inst.write_record(record)
            progress(ProgressEvent(Stage.VERIFY, f"checking the libraries of b{manifest.build}", source=source))
            if not inst.verify_staged(staging, platform):
                raise LibsInstallError(f"the ABI check cannot run for {platform} on this machine")
            progress(ProgressEvent(Stage.INSTALL, f"installing into {target}", source=source))
            inst.swap_in(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    progress(ProgressEvent(Stage.DONE, f"installed b{manifest.build} for {platform} in {target}", source=source))
    return InstallRecord(path=target, platform=platform, build=record.build, source=record.source,
                         installed_at=record.installed_at, files=record.files, cpu_features=record.cpu_features)


def check_fits(manager: LibsManager, manifest: LibsManifest) -> Platform:
    """The peer's platform when it is this machine's and this CPU has what the build needs."""
    try:
        theirs = manifest.platform()
    except ConfigError as exc:
        raise LibsInstallError(f"the peer's build names an unknown platform: {exc}") from None
    ours = manager.detect()
    if theirs != ours:
        raise LibsInstallError(f"the peer's build is for {theirs}; this machine is {ours} — install with "
                               "`kronk libs` here instead")
    lacking = missing_features(manifest.cpu_features or (), host_cpu_features())
    if lacking:
        raise LibsInstallError(
            f"the peer's build was compiled for its own CPU (GGML_NATIVE) and uses {', '.join(lacking)}, which "
            "this CPU lacks; it would stop with an illegal instruction. Build here instead: "
            "`kronk libs --source sdist`")
    return theirs


def _make_links(staging: Path, links: dict[str, str]) -> None:
    """Recreate the build's symlinks (chains too: libllama.so -> .so.0 -> .so.0.6.0); each
    must end at a file of the install."""
    pending = dict(links)
    while pending:
        ready = {}
        for name, target in pending.items():
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if target.startswith("/") or resolved.startswith("..") or resolved in pending and resolved == name:
                raise LibsInstallError(f"the peer's link {name} -> {target} points outside the install")
            if resolved not in pending:
                ready[name] = (target, resolved)
        if not ready:
            raise LibsInstallError(f"the peer's links {', '.join(sorted(pending))} form a loop")
        for name, (target, resolved) in sorted(ready.items()):
            if not (staging / resolved).is_file():
                raise LibsInstallError(f"the peer's link {name} -> {target} points at no file of the install")
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, path)
            del pending[name]
