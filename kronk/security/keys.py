"""RSA signing keys on disk, one PEM file per key id (KID), with rotation and revocation.

`$KRONK_HOME/keys/<kid>.pem` (folder 0700, files 0600). The newest key (by file time)
signs new tokens; every key present verifies; deleting a key revokes every token it
signed, because verification looks the key up on disk (one `stat`) each time.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kronk.errors import ConfigError, InvalidRequestError, KronkError
from kronk.paths import atomic_write_bytes

log = logging.getLogger(__name__)

KEY_SUFFIX = ".pem"
DIR_MODE = 0o700
FILE_MODE = 0o600
MIN_KEY_BITS = 2048
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class KeyNotFoundError(InvalidRequestError, status=404, code="key_not_found"):
    """No key with that id exists."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        super().__init__(f"no key with id {kid!r}", param="kid")

    @classmethod
    def from_wire(cls, message: str, param: str | None = None) -> KronkError:
        error = cls("")
        error.args = (message,)
        return error


def is_valid_kid(kid: object) -> bool:
    """A KID is 1-64 of [A-Za-z0-9_-]: never a path, a dot or a separator."""
    return isinstance(kid, str) and _KID.fullmatch(kid) is not None


def check_kid(kid: str) -> str:
    if not is_valid_kid(kid):
        raise InvalidRequestError(f"invalid key id {kid!r}: use 1-64 letters, digits, '-' or '_'", param="kid")
    return kid


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One key as the key list shows it (`to_dict` leaves the file's path out of API answers)."""

    kid: str
    path: Path
    created: datetime
    """The file's time: the newest key signs."""
    signing: bool
    """This key signs new tokens; the others only verify the tokens they signed, until deleted."""

    def to_dict(self) -> dict[str, Any]:
        return {"kid": self.kid, "created": self.created.isoformat(), "signing": self.signing}


@dataclass(frozen=True, slots=True)
class _Loaded:
    stamp: tuple[int, int, int]
    key: rsa.RSAPublicKey


class KeyStore:
    """The key folder. Thread-safe; every method reads the disk, so other processes' edits count."""

    def __init__(self, directory: Path, *, key_bits: int = MIN_KEY_BITS) -> None:
        if key_bits < MIN_KEY_BITS:
            raise ConfigError(f"RSA keys must have at least {MIN_KEY_BITS} bits")
        self._dir = directory
        self._key_bits = key_bits
        self._public: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    @property
    def directory(self) -> Path:
        return self._dir

    def ensure_dir(self) -> None:
        """Create the folder if needed and make it owner-only (0700)."""
        self._dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(self._dir, DIR_MODE)

    def _files(self) -> list[tuple[int, str, Path]]:
        try:
            entries = list(os.scandir(self._dir))
        except FileNotFoundError:
            return []
        found: list[tuple[int, str, Path]] = []
        for entry in entries:
            kid = entry.name[: -len(KEY_SUFFIX)]
            if entry.name.endswith(KEY_SUFFIX) and is_valid_kid(kid) and entry.is_file(follow_symlinks=False):
                try:
                    found.append((entry.stat(follow_symlinks=False).st_mtime_ns, kid, Path(entry.path)))
                except FileNotFoundError:
                    continue
        found.sort()
        return found

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first; the last one signs."""
        files = self._files()
        return [
            KeyInfo(kid, path, datetime.fromtimestamp(mtime / 1e9, UTC), signing=index == len(files) - 1)
            for index, (mtime, kid, path) in enumerate(files)
        ]

    def is_empty(self) -> bool:
        return not self._files()

    def create(self) -> KeyInfo:
        """Generate a new RSA key; it becomes the signing key at once."""
        self.ensure_dir()
        newest = max((mtime for mtime, _, _ in self._files()), default=0)
        private = rsa.generate_private_key(public_exponent=65537, key_size=self._key_bits)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        kid = str(uuid.uuid4())
        path = self._dir / f"{kid}{KEY_SUFFIX}"
        atomic_write_bytes(path, pem, mode=FILE_MODE)
        mtime = path.stat().st_mtime_ns
        if mtime <= newest:  # coarse file times: make the order of creation explicit
            mtime = newest + 1
            os.utime(path, ns=(mtime, mtime))
        log.info("created signing key %s", kid)
        return KeyInfo(kid, path, datetime.fromtimestamp(mtime / 1e9, UTC), signing=True)

    def delete(self, kid: str) -> None:
        """Delete a key, revoking every token it signed. The last key cannot be deleted."""
        check_kid(kid)
        files = self._files()
        if kid not in {name for _, name, _ in files}:
            raise KeyNotFoundError(kid)
        if len(files) == 1:
            raise InvalidRequestError(
                f"cannot delete {kid!r}: it is the only key; create another key first", param="kid"
            )
        try:
            (self._dir / f"{kid}{KEY_SUFFIX}").unlink()
        except FileNotFoundError:
            raise KeyNotFoundError(kid) from None
        with self._lock:
            self._public.pop(kid, None)
        log.info("deleted key %s; tokens it signed are revoked", kid)

    def signing_key(self) -> tuple[str, rsa.RSAPrivateKey]:
        """The newest key and its id, to sign a new token."""
        files = self._files()
        if not files:
            raise ConfigError(f"no signing key in {self._dir}: run `kronk security key create`")
        _, kid, path = files[-1]
        return kid, self._load_private(path)

    def public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        """The verifying key for `kid`, or None if the id is malformed or the key is gone."""
        if not is_valid_kid(kid):
            return None
        path = self._dir / f"{kid}{KEY_SUFFIX}"
        try:
            info = os.stat(path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            with self._lock:
                self._public.pop(kid, None)
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        with self._lock:
            cached = self._public.get(kid)
            if cached is not None and cached.stamp == stamp:
                return cached.key
        try:
            key = self._load_private(path).public_key()
        except (ConfigError, FileNotFoundError) as exc:
            log.warning("key %s is unusable: %s", kid, exc)
            return None
        with self._lock:
            self._public[kid] = _Loaded(stamp, key)
        return key

    def _load_private(self, path: Path) -> rsa.RSAPrivateKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_KEY_BITS:
            raise ConfigError(f"{path} is not an RSA key of at least {MIN_KEY_BITS} bits")
        return key
