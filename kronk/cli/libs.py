"""`kronk libs`: install, list and remove the llama.cpp libraries.

With no flags it installs the pinned build for this machine unless one is installed.
Progress goes to stderr (Rich); `--json` prints only the result, as JSON, on stdout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kronk.cli.console import Console
from kronk.manage.libs.events import ProgressEvent, Stage
from kronk.manage.libs.platform import ARCHES, OSES, PROCESSORS
from kronk.manage.libs.sources import SOURCES

if TYPE_CHECKING:
    from kronk.manage.libs.manager import LibsManager

_HELP_ENV = ("Environment: KRONK_HOME, KRONK_LIB_PATH (use that folder as is), KRONK_OS/KRONK_ARCH/"
             "KRONK_PROCESSOR (override detection), KRONK_LIBS_BASE_URL (release/tag download base).")


@click.command("libs", epilog=_HELP_ENV)
@click.option("--version", "version", metavar="bN", help="llama.cpp build to install (default: the pinned one).")
@click.option("--upgrade", is_flag=True, help="Install the requested (or pinned) build even if one is installed.")
@click.option("--list", "list_", is_flag=True, help="List installed builds.")
@click.option("--combinations", is_flag=True, help="List the platforms that can be installed.")
@click.option("--remove", is_flag=True, help="Remove the install for this (or the given) platform.")
@click.option("--source", type=click.Choice(SOURCES), help="Install only from this source (default: try all).")
@click.option("--from-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Copy libraries from this folder (e.g. a build's bin/).")
@click.option("--source-tree", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Build from this llama.cpp source tree instead of downloading one.")
@click.option("--with-tools", is_flag=True, help="Also install llama-server, llama-bench, ... into bin/.")
@click.option("--processor", type=click.Choice(PROCESSORS), help="Override the detected processor.")
@click.option("--arch", type=click.Choice(ARCHES), help="Override the detected architecture.")
@click.option("--os", "os_name", type=click.Choice(OSES), help="Override the detected operating system.")
@click.option("--from", "peer", metavar="URL",
              help="Copy the build another Kronk server runs on (same OS/arch/processor; verified, ABI-checked).")
@click.option("--from-token", "peer_token", metavar="TOKEN", envvar="KRONK_PEER_TOKEN",
              help="Admin token of the --from server (env KRONK_PEER_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def libs(version: str | None, upgrade: bool, list_: bool, combinations: bool, remove: bool, source: str | None,
         from_dir: Path | None, source_tree: Path | None, with_tools: bool, processor: str | None,
         arch: str | None, os_name: str | None, peer: str | None, peer_token: str | None, as_json: bool) -> None:
    """Install the llama.cpp libraries Kronk runs on."""
    from kronk.manage.libs.manager import LibsManager
    from kronk.manage.libs.pin import parse_build

    if sum((list_, combinations, remove)) > 1:
        raise click.UsageError("--list, --combinations and --remove are mutually exclusive")
    if peer and (list_ or combinations or remove or version or source or from_dir or source_tree or with_tools):
        raise click.UsageError("--from copies the peer's build as it is: it goes with no other install option")
    if version is not None:
        parse_build(version)  # a bad version is an error before any detection or download
    environ = dict(os.environ)
    for key, value in (("KRONK_PROCESSOR", processor), ("KRONK_ARCH", arch), ("KRONK_OS", os_name)):
        if value:
            environ[key] = value
    manager = LibsManager(environ=environ)
    console = Console(json_output=as_json)
    if list_:
        _show_list(manager, console)
    elif combinations:
        _show_combinations(manager, console)
    elif peer:
        _install_from_peer(manager, console, peer, peer_token)
    elif remove:
        record = manager.remove()
        _emit(console, record.to_dict(),
              f"removed llama.cpp {record.tag or '(unknown build)'} ({record.platform}) from {record.path}")
    else:
        _install(manager, console, version, source, from_dir, source_tree, with_tools, upgrade)


def _install(manager: LibsManager, console: Console, version: str | None, source: str | None,
             from_dir: Path | None, source_tree: Path | None, with_tools: bool, upgrade: bool) -> None:
    platform = manager.detect()
    before = manager.installed(platform)
    with ProgressView(console) as view:
        record = manager.install(version, source, with_tools=with_tools, upgrade=upgrade, platform=platform,
                                 from_dir=from_dir, source_tree=source_tree, progress=view)
    if before is not None and record == before:
        text = (f"llama.cpp {record.tag or '(unmanaged)'} is already installed for {record.platform} in "
                f"{record.path} (use --upgrade to reinstall)")
    else:
        text = f"installed llama.cpp {record.tag} for {record.platform} from {record.source} in {record.path}"
    _emit(console, record.to_dict(), text)


def _install_from_peer(manager: LibsManager, console: Console, url: str, token: str | None) -> None:
    from kronk.manage.libs_peer import install_from_peer
    from kronk.manage.peer_client import PeerClient

    with ProgressView(console) as view:
        record = install_from_peer(manager, PeerClient(url, token), progress=view)
    _emit(console, record.to_dict(), f"installed llama.cpp {record.tag} for {record.platform} from {url} in "
                                     f"{record.path}")


def _emit(console: Console, data: Any, text: str) -> None:
    if console.json_output:
        console.json(data)
    else:
        console.line(text)


def _show_list(manager: LibsManager, console: Console) -> None:
    records = manager.list_installs()
    current = manager.current()
    if console.json_output:
        console.json([{**r.to_dict(), "current": current is not None and r.path == current.path} for r in records])
        return
    rows = [("*" if current is not None and r.path == current.path else "", r.platform.os, r.platform.arch,
             r.platform.processor, r.tag or "?", r.source, "yes" if r.has_tools else "no",
             (r.installed_at or "")[:19], str(r.path)) for r in records]
    console.table(("", "OS", "ARCH", "PROCESSOR", "BUILD", "SOURCE", "TOOLS", "INSTALLED", "PATH"), rows,
                  empty="no llama.cpp libraries installed (run `kronk libs`)")


def _show_combinations(manager: LibsManager, console: Console) -> None:
    combos = manager.combinations()
    if console.json_output:
        console.json([c.to_dict() for c in combos])
        return
    console.table(("OS", "ARCH", "PROCESSOR", "RELEASE ARCHIVE", "SOURCE BUILD"),
                  [(c.platform.os, c.platform.arch, c.platform.processor, ", ".join(c.release_variants) or "-",
                    "yes" if c.buildable else "no") for c in combos])


class ProgressView:
    """Draws install events on stderr: a bar for downloads and builds, a line per attempt."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressView:
        if not self._console.json_output:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      TaskProgressColumn(), TextColumn("{task.fields[info]}", markup=False),
                                      console=self._console.err, transient=True)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, event: ProgressEvent) -> None:
        if self._progress is None:
            return
        from rich.markup import escape

        console = self._progress.console
        if event.stage is Stage.ATTEMPT:
            console.print(f"[bold]→[/] {escape(event.message)}")
        elif event.stage is Stage.FAILED:
            console.print(f"[yellow]✗ {event.source}:[/] {escape(event.message)}")
        elif event.stage is Stage.DOWNLOAD and event.done is not None:
            task = self._task("download", f"downloading {escape(event.message)}", event.total)
            info = f"{event.done / 1e6:.1f}" + (f"/{event.total / 1e6:.1f} MB" if event.total else " MB")
            self._progress.update(task, completed=event.done, info=info)
        elif event.stage is Stage.BUILD:
            task = self._task("build", "building", 100)
            if event.done is not None:
                self._progress.update(task, completed=event.done)
            self._progress.update(task, info=event.message[-60:])
        elif event.stage is not Stage.DONE:
            console.print(f"  {escape(event.message)}", style="dim")

    def _task(self, key: str, description: str, total: int | None) -> Any:
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(description, total=total, info="")
        else:
            self._progress.update(self._tasks[key], description=description, total=total)
        return self._tasks[key]
