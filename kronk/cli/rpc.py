"""`kronk rpc-server`: run ggml's RPC server from the installed llama.cpp build.

The RPC server lends this machine's devices to a Kronk server elsewhere (`--rpc`). It has
no authentication and trusts every byte it receives, so it binds loopback unless the
operator says `--allow-remote`; then it belongs on a private network only (docs/rpc.md).
The command execs the program, so signals and the exit status are the server's own.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from kronk.errors import LibraryNotFoundError

DEFAULT_PORT = 50052
PROGRAM_NAMES = ("ggml-rpc-server", "rpc-server")


def check_bind_host(host: str, allow_remote: bool) -> str:
    """The address to bind, or UsageError: an IPv4 literal (the server binds with inet_addr),
    loopback unless `allow_remote`. Decided on the parsed address; nothing is bound or resolved."""
    try:
        address = ipaddress.ip_address(host.strip())
    except ValueError:
        raise click.UsageError(f"--host {host!r}: give an IPv4 address (ggml's rpc-server binds to an "
                               "address, not a name)") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise click.UsageError(f"--host {host}: ggml's rpc-server listens on IPv4 only")
    if not address.is_loopback and not allow_remote:
        raise click.UsageError(
            f"refusing to bind {address}: the RPC server has no authentication and runs whatever it is sent, "
            "so anyone who can reach the port can use this machine. Bind 127.0.0.1, or pass --allow-remote "
            "on a private network only (docs/rpc.md)")
    return str(address)


def find_program(environ: dict[str, str] | None = None) -> Path:
    """The RPC server program of the build Kronk would load (KRONK_LIB_PATH or $KRONK_HOME/libs)."""
    from kronk._native.loader import find_lib_dir

    folder = find_lib_dir(environ)
    for name in PROGRAM_NAMES:
        for candidate in (folder / "bin" / name, folder / name):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    raise LibraryNotFoundError(
        f"the llama.cpp build in {folder} has no RPC server (it was built without GGML_RPC); "
        "install one that has: `kronk libs --upgrade --source sdist`")


def server_command(program: Path, host: str, port: int, threads: int | None, devices: str | None,
                   cache: bool) -> list[str]:
    argv = [str(program), "--host", host, "--port", str(port)]
    if threads:
        argv += ["--threads", str(threads)]
    if devices:
        argv += ["--device", devices]
    if cache:
        argv.append("--cache")
    return argv


@click.command("rpc-server")
@click.option("--host", default="127.0.0.1", show_default=True, metavar="IPV4",
              help="Address to listen on (loopback unless --allow-remote).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep received tensors in DIR/rpc, so a model's second load skips the transfer.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads (default: llama.cpp's choice).")
@click.option("--device", "devices", metavar="DEV,...",
              help="Devices to lend, e.g. CUDA0,CUDA1 (default: all; names as `kronk server` logs them).")
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-loopback --host. No authentication: private networks only.")
def rpc_server(host: str, port: int, cache_dir: Path | None, threads: int | None, devices: str | None,
               allow_remote: bool) -> None:
    """Lend this machine's devices to a Kronk server (`kronk server start --rpc HOST:PORT`)."""
    address = check_bind_host(host, allow_remote)
    program = find_program()
    environ = dict(os.environ)
    if cache_dir is not None:
        cache_dir = cache_dir.expanduser().resolve()
        cache_dir.mkdir(parents=True, exist_ok=True)
        environ["LLAMA_CACHE"] = str(cache_dir)  # the program keeps its cache in $LLAMA_CACHE/rpc
    argv = server_command(program, address, port, threads, devices, cache_dir is not None)
    if not (address.startswith("127.")):
        click.echo(f"warning: {address}:{port} is reachable from the network and unauthenticated", err=True)
    os.execve(argv[0], argv, environ)
