"""Streamed downloads that are verified before they exist under their final name.

Bytes go to a temp file beside the destination; the size (Content-Length) and, when
known, the sha256 are checked, then the temp file is renamed. A failed or interrupted
download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import requests

from kronk.errors import ChecksumError, DownloadError
from kronk.manage.libs.events import ProgressCallback, ProgressEvent, Stage

CHUNK_SIZE = 1 << 20
TIMEOUT = (15.0, 60.0)  # connect, read (between bytes)
_SHA256_RE = re.compile(r"\b([0-9a-fA-F]{64})\b")


class AssetMissingError(DownloadError):
    """The server answered 404: this build has no such file (try the next candidate)."""

    error_code = "asset_missing"


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "kronk-libs"
    return session


def fetch_sha256(session: requests.Session, url: str) -> str | None:
    """The digest published next to `url` as `<url>.sha256`, or None when there is none."""
    try:
        response = session.get(url + ".sha256", timeout=TIMEOUT)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    match = _SHA256_RE.search(response.text[:4096])
    if match is None:
        raise ChecksumError(f"{url}.sha256 does not hold a sha256 digest")
    return match.group(1).lower()


def download(session: requests.Session, url: str, dest: Path, *, progress: ProgressCallback,
             sha256: str | None = None, source: str | None = None) -> str:
    """Fetch `url` to `dest` and return its sha256; raise DownloadError/ChecksumError on any mismatch."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = session.get(url, stream=True, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot reach {url}: {_reason(exc)}") from exc
    with response:
        if response.status_code == 404:
            raise AssetMissingError(f"{url} not found (HTTP 404)")
        if response.status_code != 200:
            raise DownloadError(f"{url} answered HTTP {response.status_code}")
        total = _content_length(response)
        digest = hashlib.sha256()
        done = 0
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                progress(ProgressEvent(Stage.DOWNLOAD, dest.name, 0, total, source))
                for chunk in response.iter_content(CHUNK_SIZE):
                    handle.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    progress(ProgressEvent(Stage.DOWNLOAD, dest.name, done, total, source))
            if total is not None and done != total:
                raise ChecksumError(f"{url}: got {done} bytes, expected {total}")
            actual = digest.hexdigest()
            if sha256 is not None and actual != sha256.lower():
                raise ChecksumError(f"{url}: sha256 {actual} does not match the expected {sha256.lower()}")
            os.replace(tmp, dest)
        except requests.RequestException as exc:
            tmp.unlink(missing_ok=True)
            raise DownloadError(f"download of {url} broke off after {done} bytes: {_reason(exc)}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return actual


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _content_length(response: requests.Response) -> int | None:
    if response.headers.get("Content-Encoding"):
        return None  # the length counts encoded bytes; requests hands us decoded ones
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _reason(exc: BaseException) -> str:
    """The innermost cause: requests wraps it in urllib3's MaxRetryError, which wraps the socket error."""
    inner: object = exc
    while True:
        args = getattr(inner, "args", ())
        nested = getattr(inner, "reason", None) or (args[0] if args and isinstance(args[0], BaseException) else None)
        if not isinstance(nested, BaseException) or nested is inner:
            break
        inner = nested
    text = str(inner)
    if "): " in text and text.startswith(("HTTPConnection", "HTTPSConnection", "<urllib3")):
        text = text.split("): ", 1)[1]  # drop urllib3's "HTTPSConnection(host=..., port=...)" prefix
    return text if len(text) <= 200 else text[:200] + "…"
