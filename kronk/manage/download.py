"""Resumable, verified HTTP downloads into a file, via a `.part` file and a rename.

An interrupted transfer keeps its `<name>.part`; the next attempt (a retry here, or
a later pull) asks for the rest with `Range: bytes=N-`. A server that ignores Range
(200) or answers with another range is handled by starting over. The result is
checked against the expected size and sha256 before it is renamed into place, so the
destination name only ever holds verified bytes. Blocking: call from a thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3.exceptions

from kronk.errors import ChecksumError, DownloadError
from kronk.manage.fsutil import CHUNK, check_free_space, sha256_file

ByteProgress = Callable[[int, "int | None"], None]
"""Called with (bytes done, total bytes or None) as a transfer advances."""

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")
_RETRYABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
)


class _Retry(Exception):
    """A transient failure: try again, resuming from what the .part file holds."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    path: Path
    size: int
    sha256: str
    resumed_from: int
    """Bytes that were already in the .part file when this fetch started."""


class _PartFile:
    """The .part file and a running sha256 of its bytes, kept in step across attempts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.length = 0
        if path.exists():
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    self.digest.update(chunk)
                    self.length += len(chunk)

    def reset(self) -> None:
        self.path.write_bytes(b"")
        self.digest = hashlib.sha256()
        self.length = 0

    def append(self, chunks: Iterable[bytes], on_chunk: Callable[[int], None]) -> None:
        with self.path.open("ab") as handle:
            for chunk in chunks:
                if not chunk:
                    continue
                handle.write(chunk)
                self.digest.update(chunk)
                self.length += len(chunk)
                on_chunk(self.length)
            handle.flush()
            os.fsync(handle.fileno())


def _body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: `read1` hands over every byte received before a connection
    drops (a buffered read of a whole chunk would lose them), so resume starts after them."""
    raw = response.raw
    while chunk := raw.read1(CHUNK, decode_content=True):
        yield chunk


class Downloader:
    """Fetch URLs to files with resume, retries and verification."""

    def __init__(
        self,
        session: requests.Session | None = None,
        *,
        retries: int = 3,
        timeout: float = 30.0,
        backoff: float = 0.5,
    ) -> None:
        self.session = session or requests.Session()
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff

    def fetch(
        self,
        url: str,
        dest: Path,
        *,
        size: int | None = None,
        sha256: str | None = None,
        headers: Mapping[str, str] | None = None,
        on_bytes: ByteProgress | None = None,
    ) -> FetchResult:
        """Download `url` to `dest`; raise DownloadError, or ChecksumError on a mismatch."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            done = self._verified(dest, size, sha256)
            if done is not None:
                return done
        part = _PartFile(dest.with_name(dest.name + ".part"))
        resumed_from = part.length
        attempt = 0
        while True:
            try:
                self._transfer(url, part, size, dict(headers or {}), on_bytes)
                break
            except _Retry as exc:
                attempt += 1
                if attempt > self.retries:
                    raise DownloadError(f"download of {url} failed after {attempt} attempts: {exc}") from exc
                time.sleep(min(self.backoff * attempt, 5.0))
        actual = part.digest.hexdigest()
        if size is not None and part.length != size:
            part.path.unlink(missing_ok=True)
            raise ChecksumError(f"{dest.name}: got {part.length} bytes, expected {size}")
        if sha256 is not None and actual != sha256.lower():
            part.path.unlink(missing_ok=True)
            raise ChecksumError(f"{dest.name}: sha256 {actual} does not match the expected {sha256.lower()}")
        os.replace(part.path, dest)
        return FetchResult(path=dest, size=part.length, sha256=actual, resumed_from=resumed_from)

    @staticmethod
    def _verified(dest: Path, size: int | None, sha256: str | None) -> FetchResult | None:
        """An already complete destination (from an earlier, interrupted install) is reused."""
        actual_size = dest.stat().st_size
        if size is not None and actual_size != size or sha256 is None:
            dest.unlink()
            return None
        actual = sha256_file(dest)
        if actual != sha256.lower():
            dest.unlink()
            return None
        return FetchResult(path=dest, size=actual_size, sha256=actual, resumed_from=actual_size)

    def _transfer(
        self,
        url: str,
        part: _PartFile,
        size: int | None,
        headers: dict[str, str],
        on_bytes: ByteProgress | None,
    ) -> None:
        if size is not None and part.length > size:
            part.reset()
        if size is not None and part.length == size and size > 0:
            return
        if part.length:
            headers["Range"] = f"bytes={part.length}-"
        try:
            response = self.session.get(url, headers=headers, stream=True, timeout=self.timeout)
        except _RETRYABLE as exc:
            raise _Retry(str(exc)) from exc
        except requests.RequestException as exc:
            raise DownloadError(f"cannot download {url}: {exc}") from exc
        with response:
            total = self._start(url, response, part, size)
            if total is None:
                return
            self._check_space(part, total)
            report = (lambda done: on_bytes(done, total)) if on_bytes else (lambda done: None)
            try:
                part.append(_body_chunks(response), report)
            except _RETRYABLE as exc:
                raise _Retry(f"connection lost after {part.length} bytes ({type(exc).__name__})") from exc
        if size is None and total >= 0 and part.length < total:
            raise _Retry(f"connection closed after {part.length} of {total} bytes")
        if size is not None and part.length < size:
            raise _Retry(f"connection closed after {part.length} of {size} bytes")

    def _start(self, url: str, response: requests.Response, part: _PartFile, size: int | None) -> int | None:
        """Check the status; prepare the .part file; return the total size (-1: unknown, None: done)."""
        status = response.status_code
        asked = part.length
        if status == 416 and asked:
            match = _UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == asked:
                return None  # the .part file already holds everything
            part.reset()
            raise _Retry("server refused the resume range; starting over")
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != asked:
                part.reset()
                raise _Retry("server answered with a different range; starting over")
            return int(match.group(3)) if match.group(3) != "*" else (size if size is not None else -1)
        if status == 200:
            if asked:
                part.reset()  # the server ignored Range: take the full body from the start
            length = response.headers.get("Content-Length")
            return int(length) if length and length.isdigit() else (size if size is not None else -1)
        if status in (408, 429) or status >= 500:
            raise _Retry(f"HTTP {status} from {url}")
        hint = " (set KRONK_HF_TOKEN for gated or private repos)" if status in (401, 403) else ""
        raise DownloadError(f"HTTP {status} for {url}{hint}")

    @staticmethod
    def _check_space(part: _PartFile, total: int) -> None:
        if total > part.length:
            check_free_space(part.path.parent, total - part.length, part.path.name.removesuffix(".part"))
