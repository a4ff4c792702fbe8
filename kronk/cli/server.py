"""`kronk server start|stop|logs`: run the model server in the foreground or detached.

    kronk server start [-d] [--model M] [--port N] ...   every setting also as KRONK_* env
    kronk server stop [--timeout 30] [--force]
    kronk server logs [-f] [-n 50]

Detached, the server logs to $KRONK_HOME/server/kronk.log and its pid is in
kronk.pid next to it; `start -d` returns once the server is ready.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click

from kronk.settings import CONFIG_ENV, MODEL_CONFIG_ENV, OPTIONS, Option

F = TypeVar("F", bound=Callable[..., Any])


def _click_option(option: Option) -> Callable[[F], F]:
    help_text = f"{option.help} [env {option.env}]"
    if option.default is not None and not option.per_model:
        help_text += f" [default: {option.default}]"
    if option.parse.__name__ == "parse_bool":
        negative = "--no-" + option.name.replace("_", "-")
        return click.option(f"{option.flag}/{negative}", option.name, default=None, help=help_text)
    kind = click.Choice(option.choices) if option.choices else None
    return click.option(option.flag, option.name, default=None, type=kind, metavar=option.metavar,
                        help=help_text)


def settings_options(func: F) -> F:
    """Add one flag per server setting (plus --config/--model-config); unset flags are None."""
    for option in reversed(OPTIONS):
        func = _click_option(option)(func)
    func = click.option("--model-config", "model_config", type=click.Path(dir_okay=False), default=None,
                        help=f"YAML file: model id -> per-model settings. [env {MODEL_CONFIG_ENV}]")(func)
    func = click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
                        help=f"YAML config file of server settings. [env {CONFIG_ENV}]")(func)
    return func


def flags_to_args(flags: dict[str, Any]) -> list[str]:
    """The command-line flags that reproduce `flags` (for the detached child)."""
    args: list[str] = []
    by_name = {o.name: o for o in OPTIONS}
    for name, value in flags.items():
        if value is None:
            continue
        if name in ("config", "model_config"):
            args += ["--" + name.replace("_", "-"), str(Path(value).expanduser().resolve())]
            continue
        option = by_name[name]
        if isinstance(value, bool):
            args.append(option.flag if value else "--no-" + name.replace("_", "-"))
        else:
            args += [option.flag, str(value)]
    return args


@click.group()
def server() -> None:
    """Run the OpenAI/Anthropic-compatible model server."""


@server.command("start")
@settings_options
@click.option("-d", "--detach", is_flag=True, help="Run in the background; return once it is ready.")
@click.option("--wait", "wait_seconds", type=float, default=600.0, show_default=True,
              help="With -d: seconds to wait for readiness (the default model's load).")
def start(detach: bool, wait_seconds: float, **flags: Any) -> None:
    """Start the server (foreground unless -d). Precedence: flag > env > config file > default."""
    from kronk.server import process
    from kronk.settings import load_settings

    settings = load_settings(flags)
    running = process.read_record()
    if running is not None:
        raise click.ClickException(
            f"a Kronk server is already running (pid {running.pid}, {running.url}); stop it with `kronk server stop`"
        )
    if not detach:
        from kronk.server.runner import run

        run(settings)
        return
    log = process.log_path()
    child = process.spawn_detached(["server", "start", *flags_to_args(flags)], log)
    try:
        process.wait_ready(child, settings.base_url, wait_seconds, log)
    except process.StartFailed as exc:
        if child.poll() is None and "still starting" not in str(exc):
            process.stop_process(child.pid, timeout=10, force=True)
        raise click.ClickException(str(exc)) from None
    click.echo(f"Kronk server ready at {settings.base_url} (pid {child.pid}; logs: {log})")


@server.command("stop")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for a graceful exit.")
@click.option("--force", is_flag=True, help="SIGKILL the server if it has not exited after --timeout.")
def stop(timeout: float, force: bool) -> None:
    """Stop the running server (SIGTERM, then wait for it to exit)."""
    from kronk.server import process

    running = process.read_record()
    if running is None:
        click.echo("Kronk server is not running.")
        return
    if not process.stop_process(running.pid, timeout, force):
        raise click.ClickException(
            f"the server (pid {running.pid}) did not exit within {timeout:.0f}s; retry with --force"
        )
    process.remove_record_of(running.pid)
    click.echo(f"Stopped Kronk server (pid {running.pid}).")


@server.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until interrupted.")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True,
              help="Lines to show from the end.")
def logs(follow: bool, lines: int) -> None:
    """Show the detached server's log ($KRONK_HOME/server/kronk.log)."""
    from kronk.server import process

    path = process.log_path()
    if not path.exists():
        raise click.ClickException(f"no log file at {path} (the server writes one when started with -d)")
    text = process.tail(path, lines) if lines else ""
    if text:
        click.echo(text)
    if follow:
        try:
            _follow(path)
        except KeyboardInterrupt:
            return


def _follow(path: Path, poll: float = 0.25) -> None:
    """Print lines appended to `path`; start over when it is rotated or truncated."""
    from_end = True
    while True:
        try:
            with open(path, "rb") as handle:
                if from_end:
                    handle.seek(0, os.SEEK_END)
                while not _replaced(path, handle):
                    line = handle.readline()
                    if line:
                        click.echo(line.decode("utf-8", "replace").rstrip("\n"))
                    else:
                        time.sleep(poll)
        except FileNotFoundError:
            time.sleep(poll)
        from_end = False


def _replaced(path: Path, handle: BinaryIO) -> bool:
    """True if `path` now names another file (rotation) or was truncated below our position."""
    try:
        current = path.stat()
    except FileNotFoundError:
        return False
    return current.st_ino != os.fstat(handle.fileno()).st_ino or current.st_size < handle.tell()
