"""Safe extraction of release archives and source tarballs.

Nothing may land outside the destination: tar members go through Python's `data`
filter (no absolute paths, no `..`, no links leaving the tree, no device files) and
zip names are checked the same way. A truncated or corrupt archive raises
ChecksumError instead of leaving a half-extracted tree behind for the caller to trust.
"""

from __future__ import annotations

import copy
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from kronk.errors import ChecksumError, DownloadError


def _corrupt(archive: Path, exc: BaseException) -> ChecksumError:
    return ChecksumError(f"{archive.name} is corrupt or truncated: {exc}")


def _strip(name: str, prefix: tuple[str, ...]) -> PurePosixPath | None:
    parts = PurePosixPath(name).parts
    if parts[: len(prefix)] != prefix or len(parts) == len(prefix):
        return None
    return PurePosixPath(*parts[len(prefix):])


def top_level(archive: Path) -> str:
    """The single leading folder of a tarball (`llama.cpp-b11434`), ChecksumError if unreadable."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            first = tar.next()
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise _corrupt(archive, exc) from exc
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise _corrupt(archive, exc) from exc
    if first is None:
        raise _corrupt(archive, EOFError("empty archive"))
    return PurePosixPath(first.name).parts[0]


def extract(archive: Path, dest: Path, *, subdir: tuple[str, ...] = (),
            select: Callable[[PurePosixPath], bool] | None = None) -> None:
    """Extract `archive` (.tar.gz/.tgz/.tar.xz/.zip) into `dest`.

    `subdir` keeps only members under that leading path and strips it (e.g. the
    `llama.cpp-b11434/` folder of a tag tarball); `select` filters the stripped paths.
    """
    dest.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    if name.endswith(".zip"):
        _extract_zip(archive, dest, subdir, select)
    elif name.endswith((".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar")):
        _extract_tar(archive, dest, subdir, select)
    else:
        raise DownloadError(f"{archive.name}: unknown archive type")


def _extract_tar(archive: Path, dest: Path, subdir: tuple[str, ...],
                 select: Callable[[PurePosixPath], bool] | None) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                rel = _strip(member.name, subdir) if subdir else PurePosixPath(member.name)
                if rel is None or (select is not None and not select(rel)):
                    continue
                member = copy.copy(member)  # renamed below; the archive's own index stays as it was
                if member.islnk():
                    link = _strip(member.linkname, subdir) if subdir else PurePosixPath(member.linkname)
                    if link is None:
                        continue
                    member.linkname = str(link)
                member.name = str(rel)
                _extract_member(tar, member, dest, archive)
    except OSError as exc:
        if exc.errno is not None:
            raise  # a real disk error (ENOSPC, EACCES), not a corrupt archive
        raise _corrupt(archive, exc) from exc  # gzip.BadGzipFile and friends
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise _corrupt(archive, exc) from exc


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    """Extract one member, refusing what could write outside `dest` or is not a plain file,
    folder or link. Python's "data" filter does this where it exists (3.11.4+); before
    that (Debian 12's 3.11.2) the same rules are checked here."""
    if hasattr(tarfile, "data_filter"):
        try:
            tar.extract(member, dest, filter="data")
        except tarfile.FilterError as exc:
            raise DownloadError(f"{archive.name}: refusing unsafe member {member.name!r}: {exc}") from exc
        return
    root = dest.resolve()
    target = (root / member.name).resolve()
    unsafe = not (member.isfile() or member.isdir() or member.issym() or member.islnk())
    unsafe = unsafe or PurePosixPath(member.name).is_absolute() or not target.is_relative_to(root)
    if member.issym() or member.islnk():
        base = target.parent if member.issym() else root
        unsafe = unsafe or PurePosixPath(member.linkname).is_absolute()
        unsafe = unsafe or not (base / member.linkname).resolve().is_relative_to(root)
    if unsafe:
        raise DownloadError(f"{archive.name}: refusing unsafe member {member.name!r}")
    member.mode &= 0o755  # no setuid/setgid/sticky bits, as the data filter does
    tar.extract(member, dest, set_attrs=not member.issym())


def _extract_zip(archive: Path, dest: Path, subdir: tuple[str, ...],
                 select: Callable[[PurePosixPath], bool] | None) -> None:
    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = _strip(info.filename, subdir) if subdir else PurePosixPath(info.filename)
                if rel is None or (select is not None and not select(rel)):
                    continue
                target = (root / rel).resolve()
                if rel.is_absolute() or ".." in rel.parts or not target.is_relative_to(root):
                    raise DownloadError(f"{archive.name}: refusing unsafe member {info.filename!r}")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, target.open("wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    target.chmod(mode | 0o600)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise _corrupt(archive, exc) from exc
