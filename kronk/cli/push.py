"""`kronk push MODEL --to URL`: copy a model of the local store into another Kronk server.

The files are read from $KRONK_HOME/models here and sent to the receiver's peer API
in chunks with their sha256; a cut connection or a restarted receiver resumes where
the receiver's copy ends, and the receiver verifies every file before indexing it.
"""

from __future__ import annotations

from typing import Any

import click

from kronk.cli.console import Console, human_bytes


@click.command("push")
@click.argument("model_name", metavar="MODEL")
@click.option("--to", "target", metavar="URL", required=True, help="Base URL of the receiving Kronk server.")
@click.option("--token", metavar="TOKEN", envvar="KRONK_PEER_TOKEN",
              help="Admin token of the receiving server (env KRONK_PEER_TOKEN).")
@click.option("--force", is_flag=True, help="Replace a model of that id the receiver holds with other files.")
@click.option("--chunk-size", type=click.IntRange(min=64 << 10, max=64 << 20), default=8 << 20, show_default=True,
              help="Bytes per upload request.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def push(model_name: str, target: str, token: str | None, force: bool, chunk_size: int, as_json: bool) -> None:
    """Push MODEL (id or alias in the local store) with its shards, projector and config to URL."""
    from kronk.manage.peer_client import PeerClient, Pusher
    from kronk.manage.progress import TransferEvent
    from kronk.manage.service import ModelService

    console = Console(json_output=as_json)
    pusher = Pusher(PeerClient(target, token), chunk_size=chunk_size)
    with console.progress() as progress:
        def on_event(event: TransferEvent) -> None:
            if event.status == "uploading" and event.file:
                progress.update(event.file, f"send {event.file}", event.completed, event.total)
            elif event.status in ("retrying", "verifying") and event.message:
                progress.message(event.message)

        result: dict[str, Any] = pusher.push(ModelService.default().store, model_name, force=force, progress=on_event)
    if as_json:
        return console.json(result)
    if result["status"] == "exists":
        console.success(f"{result['model']} is already on {target}")
        return
    model = result["model"]
    console.success(f"pushed {model['id']} ({human_bytes(model.get('size'))}) to {target} "
                    f"in {result['seconds']:.1f}s")
