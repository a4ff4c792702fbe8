"""Root of the `kronk` CLI.

Command groups live in their own modules and are imported only when used, so
`kronk --help` stays fast and a heavy import never slows an unrelated command.
Every `KronkError` becomes a one-line message and a non-zero exit at this edge.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from kronk.errors import KronkError

# command name -> "module:attribute"
_COMMANDS: dict[str, str] = {
    "libs": "kronk.cli.libs:libs",
    "model": "kronk.cli.model:model",
    "catalog": "kronk.cli.catalog:catalog",
    "security": "kronk.cli.security:security",
    "server": "kronk.cli.server:server",
    "chat": "kronk.cli.chat:chat",
    "mcp": "kronk.cli.mcp:mcp",
    "push": "kronk.cli.push:push",
    "rpc-server": "kronk.cli.rpc:rpc_server",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module_name, attr = _COMMANDS[cmd_name].split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name == module_name:
                    return None
                raise
            return getattr(module, attr)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KronkError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kronk")
def cli() -> None:
    """Kronk: run GGUF models locally — SDK, OpenAI/Anthropic-compatible server, CLI."""


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="kronk", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
