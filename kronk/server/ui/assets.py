"""The browser UI's static files, read once at startup: bytes, gzip, ETag, content type.

The whole bundle is a few hundred KB, so it is kept in memory; its version is a hash of
every file, so `/ui/<version>/...` URLs can be cached forever and change when any file does.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import kronk

STATIC_DIR = Path(kronk.__file__).resolve().parent / "ui" / "static"
INDEX = "index.html"
ASSET_BASE_MARK = "%ASSET_BASE%"
"""Written in index.html where the versioned asset prefix goes."""

CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
_COMPRESSIBLE = (".html", ".js", ".css", ".svg", ".json", ".txt", ".md")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    """Present when compressing saves bytes."""
    content_type: str
    etag: str


def _asset(name: str, body: bytes) -> Asset:
    suffix = Path(name).suffix.lower()
    gzipped = gzip.compress(body, compresslevel=9, mtime=0) if suffix in _COMPRESSIBLE else None
    if gzipped is not None and len(gzipped) >= len(body):
        gzipped = None
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(body, gzipped, CONTENT_TYPES.get(suffix, "application/octet-stream"), etag)


@dataclass(frozen=True, slots=True)
class Bundle:
    version: str
    assets: dict[str, Asset]
    """Relative path (posix) -> asset; index.html already has its asset prefix filled in."""

    @property
    def base(self) -> str:
        return f"/ui/{self.version}/"

    @classmethod
    def load(cls, root: Path = STATIC_DIR) -> Bundle:
        """Read every file under `root`; the version hashes names and contents of all of them."""
        files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        digest = hashlib.sha256()
        raw: dict[str, bytes] = {}
        for path in files:
            name = path.relative_to(root).as_posix()
            raw[name] = path.read_bytes()
            digest.update(name.encode() + b"\0" + hashlib.sha256(raw[name]).digest())
        version = digest.hexdigest()[:12]
        base = f"/ui/{version}/"
        assets: dict[str, Asset] = {}
        for name, body in raw.items():
            if name == INDEX:
                body = body.replace(ASSET_BASE_MARK.encode(), base.encode())
            assets[name] = _asset(name, body)
        return cls(version, assets)
