"""`kronk security`: keys, tokens and the security settings, on the local $KRONK_HOME files.

kronk security key list|create|delete KID
kronk security token create [--admin] [--duration 24h] [--endpoints chat-completions:1000/day,…]
kronk security sec
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

ENDPOINTS_HELP = (
    "Grants as NAME:LIMIT/WINDOW or NAME:unlimited, comma-separated; WINDOW is day, month or year; "
    "NAME is chat-completions, completions, responses, messages, embeddings, rerank, tokenize or * (all)."
)


def _config() -> Any:
    from kronk.security.config import SecurityConfig

    return SecurityConfig.from_env()


def _keys(config: Any) -> Any:
    from kronk.security.keys import KeyStore

    return KeyStore(config.keys_path)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _notice(message: str) -> None:
    click.echo(message, err=True)


@click.group()
def security() -> None:
    """Keys, tokens and the security mode (KRONK_SECURITY=off|management|full)."""


@security.group()
def key() -> None:
    """RSA signing keys in $KRONK_HOME/keys: the newest signs, every key verifies."""


@key.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def key_list(as_json: bool) -> None:
    """List keys, oldest first; the signing key is marked."""
    keys = _keys(_config()).list()
    if as_json:
        _print_json([info.to_dict() for info in keys])
        return
    if not keys:
        _notice("no keys yet: `kronk security key create` or start the server with security on")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("KID", "CREATED (UTC)", "SIGNING")
    for info in keys:
        table.add_row(info.kid, info.created.strftime("%Y-%m-%d %H:%M:%S"), "yes" if info.signing else "")
    Console().print(table)


@key.command("create")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def key_create(as_json: bool) -> None:
    """Create a key; new tokens are signed with it (older tokens stay valid)."""
    info = _keys(_config()).create()
    if as_json:
        _print_json(info.to_dict())
    else:
        click.echo(info.kid)
        _notice(f"created key {info.kid}; it signs new tokens from now on")


@key.command("delete")
@click.argument("kid")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def key_delete(kid: str, yes: bool) -> None:
    """Delete key KID: every token it signed stops working at once."""
    from kronk.security.keys import check_kid

    store = _keys(_config())
    check_kid(kid)
    if not yes:
        click.confirm(f"Delete key {kid} and revoke every token it signed?", abort=True, err=True)
    store.delete(kid)
    _notice(f"deleted key {kid}")


@security.group()
def token() -> None:
    """Signed RS256 tokens."""


@token.command("create")
@click.option("--admin", is_flag=True, help="An admin token: management APIs, every endpoint, no limits.")
@click.option(
    "--duration",
    default=None,
    metavar="DURATION",
    help="Lifetime, e.g. 30m, 24h, 30d, 1y (default: KRONK_TOKEN_DURATION or 24h).",
)
@click.option("--endpoints", default="", metavar="GRANTS", help=ENDPOINTS_HELP)
@click.option(
    "--subject", default=None, metavar="NAME", help="Who the token is for (the `sub` claim; default a random id)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the token and its claims as JSON.")
def token_create(admin: bool, duration: str | None, endpoints: str, subject: str | None, as_json: bool) -> None:
    """Create a token; prints only the token, so `TOKEN=$(kronk security token create …)` works."""
    from kronk.security import admin as operations
    from kronk.security.durations import parse_lifetime
    from kronk.security.tokens import parse_grants

    config = _config()
    lifetime = parse_lifetime(duration) if duration else None
    grants = parse_grants(endpoints)
    if not admin and not grants:
        _notice("warning: this token has no endpoint grants; in full mode it can only list models")
    issued, boot = operations.create_token(
        _keys(config), config, now=time.time(), admin=admin, duration=lifetime, endpoints=grants, subject=subject
    )
    if boot is not None:
        _notice(f"created the first signing key {boot.key.kid} and an admin token in {boot.admin_token_path}")
    if as_json:
        claims = issued.claims
        _print_json({"token": issued.token, "kid": issued.kid, **claims.to_payload()})
    else:
        click.echo(issued.token)


@security.command("sec")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sec(as_json: bool) -> None:
    """Show the security mode and settings (from the KRONK_* environment)."""
    config = _config()
    info = {**config.describe(), "keys": len(_keys(config).list())}
    if as_json:
        _print_json(info)
        return
    width = max(len(name) for name in info)
    for name, value in info.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        click.echo(f"{name.ljust(width)}  {shown if shown != '' else '-'}")
