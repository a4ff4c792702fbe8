"""`kronk security` end to end through Click, on the isolated $KRONK_HOME."""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner, Result

from kronk import paths
from kronk.cli.main import cli
from kronk.security.keys import KeyStore
from kronk.security.tokens import Grant, Window, verify_token


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["security", *args], input=input, catch_exceptions=False)


def test_key_create_list_delete() -> None:
    first = run("key", "create")
    assert first.exit_code == 0
    kid1 = first.stdout.strip()
    kid2 = json.loads(run("key", "create", "--json").stdout)["kid"]
    listed = json.loads(run("key", "list", "--json").stdout)
    assert [(k["kid"], k["signing"]) for k in listed] == [(kid1, False), (kid2, True)]
    table = run("key", "list").stdout
    assert kid1 in table and kid2 in table
    assert stat.S_IMODE(paths.keys_dir().stat().st_mode) == 0o700

    refused = run("key", "delete", kid1, input="n\n")
    assert refused.exit_code != 0
    assert len(json.loads(run("key", "list", "--json").stdout)) == 2
    assert run("key", "delete", kid1, "--yes").exit_code == 0
    assert [k["kid"] for k in json.loads(run("key", "list", "--json").stdout)] == [kid2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("key", "delete", "../../etc/passwd", "--yes"), "invalid key id"),
        (("key", "delete", "nope", "--yes"), "no key with id"),
        (("token", "create", "--endpoints", "chat:1/day"), "unknown endpoint"),
        (("token", "create", "--endpoints", "chat-completions:1000"), "NAME:LIMIT/WINDOW"),
        (("token", "create", "--duration", "soon"), "invalid duration"),
    ],
)
def test_bad_input_is_a_one_line_error(args: tuple[str, ...], message: str) -> None:
    run("key", "create")
    result = run(*args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_last_key_cannot_be_deleted() -> None:
    kid = run("key", "create").stdout.strip()
    result = run("key", "delete", kid, "--yes")
    assert result.exit_code == 1 and "only key" in result.stderr


def test_token_create_signs_with_the_newest_key() -> None:
    run("key", "create")
    newest = run("key", "create").stdout.strip()
    result = run(
        "token",
        "create",
        "--duration",
        "48h",
        "--subject",
        "bob",
        "--endpoints",
        "chat-completions:1000/day,embeddings:unlimited",
    )
    assert result.exit_code == 0
    token = result.stdout.strip()
    verified = verify_token(token, KeyStore(paths.keys_dir()), max_bytes=16384)
    claims = verified.claims
    assert verified.kid == newest
    assert claims.subject == "bob" and not claims.admin
    assert claims.expires_at - claims.issued_at == 48 * 3600
    assert claims.endpoints == {
        "chat-completions": Grant(Window.DAY, 1000),
        "embeddings": Grant(Window.UNLIMITED),
    }


def test_admin_token_json_and_issuer_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_SECURITY_ISSUER", "acme")
    monkeypatch.setenv("KRONK_TOKEN_DURATION", "30m")
    payload = json.loads(run("token", "create", "--admin", "--json").stdout)
    assert payload["admin"] is True and payload["iss"] == "acme"
    assert payload["exp"] - payload["iat"] == 1800


def test_first_token_bootstraps_the_key_folder() -> None:
    result = run("token", "create", "--endpoints", "*:10/month")
    assert result.exit_code == 0
    assert "admin token" in result.stderr
    admin_file = paths.keys_dir() / "admin.jwt"
    assert stat.S_IMODE(admin_file.stat().st_mode) == 0o600
    admin = verify_token(admin_file.read_text().strip(), KeyStore(paths.keys_dir()), max_bytes=16384)
    assert admin.claims.admin


def test_token_without_grants_warns() -> None:
    result = run("token", "create")
    assert result.exit_code == 0 and "no endpoint grants" in result.stderr


def test_sec_shows_mode_and_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_SECURITY", "full")
    monkeypatch.setenv("KRONK_RATE_STORE", "redis://user:secret@127.0.0.1:6379/0")
    info = json.loads(run("sec", "--json").stdout)
    assert info["mode"] == "full"
    assert info["rate_store"] == "redis://user:***@127.0.0.1:6379/0"
    assert info["keys"] == 0
    text = run("sec").stdout
    assert "full" in text and "secret" not in text


def test_bad_mode_in_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRONK_SECURITY", "paranoid")
    result = run("sec")
    assert result.exit_code == 1 and "invalid security mode" in result.stderr
