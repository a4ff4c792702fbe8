"""Key files: permissions, rotation order, KID validation, deletion, first-start bootstrap."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kronk import paths
from kronk.errors import ConfigError, InvalidRequestError
from kronk.security.admin import ADMIN_TOKEN_FILE, bootstrap
from kronk.security.config import SecurityConfig
from kronk.security.keys import KeyNotFoundError, KeyStore, check_kid, is_valid_kid
from kronk.security.tokens import verify_token


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_files_are_private_even_with_an_open_umask() -> None:
    old = os.umask(0)
    try:
        store = KeyStore(paths.keys_dir())
        info = store.create()
        result = bootstrap(KeyStore(paths.kronk_home() / "other-keys"), SecurityConfig(), now=1_900_000_000)
    finally:
        os.umask(old)
    assert _mode(paths.keys_dir()) == 0o700
    assert _mode(info.path) == 0o600
    assert result is not None
    assert _mode(result.admin_token_path.parent) == 0o700
    assert _mode(result.admin_token_path) == 0o600
    assert _mode(result.key.path) == 0o600


def test_existing_open_key_folder_is_tightened() -> None:
    folder = paths.keys_dir()
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    KeyStore(folder).create()
    assert _mode(folder) == 0o700


def test_newest_key_signs_and_every_key_verifies() -> None:
    store = KeyStore(paths.keys_dir())
    first = store.create()
    second = store.create()
    third = store.create()
    listed = store.list()
    assert [k.kid for k in listed] == [first.kid, second.kid, third.kid]
    assert [k.signing for k in listed] == [False, False, True]
    assert store.signing_key()[0] == third.kid
    for info in listed:
        assert store.public_key(info.kid) is not None


def test_rotation_order_holds_when_file_times_tie() -> None:
    store = KeyStore(paths.keys_dir())
    first = store.create()
    os.utime(first.path, ns=(4_000_000_000_000_000_000, 4_000_000_000_000_000_000))  # far future
    second = store.create()
    assert store.signing_key()[0] == second.kid


def test_delete_revokes_and_refuses_the_last_key() -> None:
    store = KeyStore(paths.keys_dir())
    old = store.create()
    new = store.create()
    store.delete(old.kid)
    assert store.public_key(old.kid) is None
    assert [k.kid for k in store.list()] == [new.kid]
    with pytest.raises(InvalidRequestError, match="only key"):
        store.delete(new.kid)
    with pytest.raises(KeyNotFoundError):
        store.delete(old.kid)


@pytest.mark.parametrize("kid", ["../keys/x", "..", "a/b", "a.b", "", "x" * 65, "k\x00", "a b", "/etc/passwd"])
def test_kids_with_path_characters_are_refused(kid: str) -> None:
    assert not is_valid_kid(kid)
    with pytest.raises(InvalidRequestError):
        check_kid(kid)
    store = KeyStore(paths.keys_dir())
    store.create()
    assert store.public_key(kid) is None
    with pytest.raises(InvalidRequestError):
        store.delete(kid)


def test_non_key_files_and_symlinks_are_ignored(tmp_path: Path) -> None:
    store = KeyStore(paths.keys_dir())
    real = store.create()
    outside = tmp_path / "outside.pem"
    outside.write_bytes(real.path.read_bytes())
    (paths.keys_dir() / "linked.pem").symlink_to(outside)
    (paths.keys_dir() / "notes.txt").write_text("hello")
    assert [k.kid for k in store.list()] == [real.kid]
    assert store.public_key("linked") is None


def test_a_corrupt_key_file_is_unusable_not_fatal() -> None:
    store = KeyStore(paths.keys_dir())
    store.create()
    (paths.keys_dir() / "broken.pem").write_text("not a key")
    assert store.public_key("broken") is None
    with pytest.raises(ConfigError, match="not an unencrypted PEM"):
        store.signing_key()  # the newest file is the broken one


def test_no_signing_key_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="key create"):
        KeyStore(paths.keys_dir()).signing_key()


def test_bootstrap_creates_a_key_and_a_working_admin_token_once() -> None:
    store = KeyStore(paths.keys_dir())
    config = SecurityConfig()
    result = bootstrap(store, config, now=1_900_000_000)
    assert result is not None
    assert result.admin_token_path == paths.keys_dir() / ADMIN_TOKEN_FILE
    token = result.admin_token_path.read_text().strip()
    verified = verify_token(token, store, max_bytes=config.max_token_bytes)
    assert verified.claims.admin is True
    assert verified.kid == result.key.kid
    assert bootstrap(store, config, now=1_900_000_000) is None
    assert len(store.list()) == 1


def test_key_cache_notices_a_replaced_file() -> None:
    store = KeyStore(paths.keys_dir())
    info = store.create()
    before = store.public_key(info.kid)
    other = KeyStore(paths.kronk_home() / "elsewhere").create()
    os.replace(other.path, info.path)
    after = store.public_key(info.kid)
    assert before is not None and after is not None
    assert before.public_numbers() != after.public_numbers()
