"""The CLI's one terminal wrapper: tables, key/value views, notes, errors, progress bars, JSON.

Results go to stdout; notes, warnings and progress go to stderr, so `--json` output
stays machine-readable and pipes stay clean. Rich is imported only when something
is drawn. Rich honours NO_COLOR and COLUMNS, which keeps test output plain.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import click


def human_bytes(count: int | None) -> str:
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} B"


def human_count(count: int | None) -> str:
    """Parameter counts: 134515008 -> 134.5M."""
    if not count:
        return "-"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


class Console:
    """Output of one command. With `json_output`, only `json()` prints to stdout."""

    def __init__(self, *, json_output: bool = False) -> None:
        self.json_output = json_output
        self._out: Any = None
        self._err: Any = None

    @property
    def out(self) -> Any:
        if self._out is None:
            from rich.console import Console as RichConsole

            self._out = RichConsole(highlight=False, soft_wrap=False)
        return self._out

    @property
    def err(self) -> Any:
        if self._err is None:
            from rich.console import Console as RichConsole

            self._err = RichConsole(stderr=True, highlight=False)
        return self._err

    # --- results (stdout) --------------------------------------------------

    def json(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, default=str))

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None,
              empty: str = "nothing to show") -> None:
        from rich.table import Table

        rows = [list(r) for r in rows]
        if not rows:
            self.note(empty)
            return
        table = Table(title=title, show_edge=False, pad_edge=False, box=None, header_style="bold")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*("-" if cell is None else str(cell) for cell in row))
        self.out.print(table)

    def fields(self, pairs: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
        """A two-column `key  value` view (for `show` commands); None values are skipped."""
        from rich.table import Table

        table = Table(title=title, show_header=False, box=None, pad_edge=False, title_justify="left")
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in pairs:
            if value is not None and value != "":
                table.add_row(key, str(value))
        self.out.print(table)

    def line(self, text: str) -> None:
        self.out.print(text, markup=False)

    def success(self, text: str) -> None:
        if not self.json_output:
            self.out.print(f"[green]✓[/] {_escape(text)}")

    # --- side channel (stderr) ---------------------------------------------

    def note(self, text: str) -> None:
        self.err.print(f"[dim]{_escape(text)}[/]")

    def warn(self, text: str) -> None:
        self.err.print(f"[yellow]warning:[/] {_escape(text)}")

    def error(self, text: str) -> None:
        self.err.print(f"[red]error:[/] {_escape(text)}")

    def progress(self) -> TransferProgress:
        return TransferProgress(self.err, enabled=not self.json_output)


class TransferProgress:
    """Byte progress bars keyed by name (one per file), plus status lines above them."""

    def __init__(self, console: Any, *, enabled: bool = True) -> None:
        self._console = console
        self._enabled = enabled
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> TransferProgress:
        if self._enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=self._console, transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, key: str, description: str, completed: int | None, total: int | None) -> None:
        if self._progress is None:
            return
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = self._progress.add_task(description, total=total)
        self._progress.update(task, description=description, completed=completed or 0, total=total)

    def message(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(f"[bold]→[/] {_escape(text)}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
