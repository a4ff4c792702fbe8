"""Key and token operations shared by the `kronk security` CLI and the admin HTTP routes.

Includes the first-start bootstrap: when the key folder is empty, create a signing key
and an admin token file, so turning security on never leaves a server open or locked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from kronk.paths import atomic_write_text, file_lock
from kronk.security.config import SecurityConfig
from kronk.security.endpoints import ENDPOINT_NAMES
from kronk.security.keys import FILE_MODE, KeyInfo, KeyStore
from kronk.security.tokens import Grant, IssuedToken, Window, issue_token

log = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin.jwt"
BOOTSTRAP_TOKEN_DURATION = timedelta(days=365)
_LOCK_FILE = ".lock"


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    key: KeyInfo
    admin_token_path: Path
    admin_token: IssuedToken


def admin_token_path(keys: KeyStore) -> Path:
    return keys.directory / ADMIN_TOKEN_FILE


@contextmanager
def _folder_lock(keys: KeyStore) -> Iterator[None]:
    """Serialise bootstraps of several processes sharing one KRONK_HOME."""
    keys.ensure_dir()
    with file_lock(keys.directory / _LOCK_FILE):
        yield


def bootstrap(keys: KeyStore, config: SecurityConfig, *, now: float) -> BootstrapResult | None:
    """If there is no key yet: create one and write an admin token file (0600). Idempotent."""
    with _folder_lock(keys):
        if not keys.is_empty():
            return None
        key = keys.create()
        every_endpoint = {name: Grant(Window.UNLIMITED) for name in ENDPOINT_NAMES}
        issued = issue_token(
            keys,
            issuer=config.issuer,
            duration=BOOTSTRAP_TOKEN_DURATION,
            now=now,
            subject="admin",
            admin=True,
            endpoints=every_endpoint,
        )
        path = admin_token_path(keys)
        atomic_write_text(path, issued.token + "\n", mode=FILE_MODE)
    log.info("security: created signing key %s and an admin token in %s", key.kid, path)
    return BootstrapResult(key, path, issued)


def create_token(
    keys: KeyStore,
    config: SecurityConfig,
    *,
    now: float,
    admin: bool = False,
    duration: timedelta | None = None,
    endpoints: Mapping[str, Grant] | None = None,
    subject: str | None = None,
) -> tuple[IssuedToken, BootstrapResult | None]:
    """Sign a token with the current key, bootstrapping the key folder first if it is empty."""
    boot = bootstrap(keys, config, now=now) if keys.is_empty() else None
    issued = issue_token(
        keys,
        issuer=config.issuer,
        duration=duration if duration is not None else config.token_duration,
        now=now,
        subject=subject,
        admin=admin,
        endpoints=endpoints,
    )
    return issued, boot
