#!/usr/bin/env python3
"""Run one real client against a real `kronk server start`, with every request captured.

    .venv/bin/python scripts/e2e/serve.py run --name claude_code -- bash scripts/e2e/claude_code.sh

`run` starts Kronk on a free loopback port with the default model (SmolLM2-135M-Instruct,
catalog alias `smollm2`), a logging proxy in front of it, waits for readiness, runs the
command with these variables set, stops everything and exits with the command's status:

    KRONK_E2E_URL      the proxy's base URL (clients talk to it, never to Kronk directly)
    KRONK_E2E_RUN      this run's folder: kronk.log, capture/NNNN-<path>.json, the client's files
    KRONK_E2E_MODEL    the model name clients send (smollm2)
    KRONK_E2E_DIRECT_URL  Kronk itself, for the scripts' own polling (/metrics), kept out of the capture

Kronk gets its own KRONK_HOME (.e2e/home) whose models folder links the model that
scripts/fetch_models.py keeps in ~/.cache/kronk-test-models, so nothing is downloaded and
the machine's ~/.kronk is left alone. The proxy writes one JSON file per request: method,
path, headers (secrets redacted), the body as the client sent it, and Kronk's status and body.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

ROOT = Path(__file__).resolve().parents[2]
E2E = ROOT / ".e2e"
KRONK = ROOT / ".venv" / "bin" / "kronk"
MODEL_ALIAS = "smollm2"
MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1"
MODEL_FILE = "SmolLM2-135M-Instruct-Q4_1.gguf"
TEST_MODELS = Path(os.environ.get("KRONK_TEST_MODELS", Path.home() / ".cache" / "kronk-test-models"))
# Claude Code and Codex send 10-20k tokens of system prompt and tool schemas (Open WebUI
# fewer but more tools); SmolLM2 was trained at 8192, Kronk lets a chat model run past that.
DEFAULT_CTX = 32768
DEFAULT_SLOTS = 2  # the chat request plus one background task (title, tags) at a time
SECRET_HEADERS = {"authorization", "x-api-key", "cookie", "set-cookie", "proxy-authorization"}
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "accept-encoding",
               "upgrade", "te", "trailer", "proxy-connection"}
RESPONSE_KEEP = 1 << 20  # bytes of a response body kept in a capture file


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def real_lib_dir() -> str:
    """Where the machine's llama.cpp libs are, found before KRONK_HOME points elsewhere."""
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c",
                          "from kronk._native.loader import find_lib_dir; print(find_lib_dir())"],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    return out.stdout.strip()


def kronk_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRONK_")}
    env["KRONK_LIB_PATH"] = os.environ.get("KRONK_LIB_PATH") or real_lib_dir()
    env["KRONK_HOME"] = str(home)
    return env


def prepare_home(home: Path, env: dict[str, str]) -> None:
    """Link the cached default model into `home`'s store and index it (no download)."""
    source = TEST_MODELS / MODEL_FILE
    if not source.is_file():
        sys.exit(f"serve: {source} is missing; run `.venv/bin/python scripts/fetch_models.py --only smollm2`")
    folder = home / "models" / MODEL_ID
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MODEL_FILE
    if not target.exists():
        target.symlink_to(source)
    subprocess.run([str(KRONK), "model", "index", "--local"], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL)


def redact(headers: Any) -> dict[str, str]:
    return {k: ("<redacted>" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def decode_body(raw: bytes, encoding: str) -> dict[str, Any]:
    """The body as JSON when it is JSON (after gzip), else text, else base64."""
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    elif encoding == "zstd":
        try:
            import zstandard
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        except ImportError:
            pass
    try:
        return {"json": json.loads(raw)}
    except ValueError:
        pass
    try:
        return {"text": raw.decode()}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}


class CaptureProxy:
    """Forwards every request to Kronk unchanged and writes one capture file per request."""

    def __init__(self, upstream: str, capture_dir: Path) -> None:
        self.upstream = upstream
        self.capture_dir = capture_dir
        self.count = 0
        self.session: ClientSession | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        self.count += 1
        number = self.count
        started = time.time()
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        record: dict[str, Any] = {
            "method": request.method, "path": request.path, "query": request.query_string,
            "headers": redact(request.headers),
            "body": decode_body(body, request.headers.get("Content-Encoding", "")) if body else None,
        }
        kept = bytearray()
        try:
            async with self.session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                            data=body or None, allow_redirects=False) as upstream:
                record["response"] = {"status": upstream.status, "headers": dict(upstream.headers)}
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_HEADERS and key.lower() != "content-encoding":
                        response.headers[key] = value
                await response.prepare(request)
                try:
                    async for chunk in upstream.content.iter_any():
                        if len(kept) < RESPONSE_KEEP:
                            kept += chunk[: RESPONSE_KEEP - len(kept)]
                        await response.write(chunk)
                    await response.write_eof()
                except ConnectionError as exc:  # the client hung up: leaving the block closes Kronk's side too
                    record["response"]["client_disconnected"] = f"{type(exc).__name__}: {exc}"
                record["response"]["body"] = decode_body(bytes(kept), "")
                return response
        except (ConnectionError, asyncio.CancelledError) as exc:  # Kronk failed, or the client left early
            answer = record.setdefault("response", {})
            answer["error"] = f"{type(exc).__name__}: {exc}"
            answer["partial_body"] = decode_body(bytes(kept), "")
            raise
        finally:
            record["seconds"] = round(time.time() - started, 3)
            name = f"{number:04d}-{request.method}-{request.path.strip('/').replace('/', '_') or 'root'}.json"
            (self.capture_dir / name).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")

    async def start(self, port: int) -> web.AppRunner:
        self.session = ClientSession(timeout=ClientTimeout(total=None, sock_read=None), auto_decompress=False)
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"serve: kronk exited with {process.returncode} before it was ready; see {log}")
        try:
            with urllib.request.urlopen(url + "/v1/readiness", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"serve: kronk was not ready within {timeout:.0f}s; see {log}")


def start_kronk(run_dir: Path, port: int, ctx: int, slots: int, extra: Sequence[str]) -> subprocess.Popen[bytes]:
    home = E2E / "home"
    env = kronk_env(home)
    prepare_home(home, env)
    log = run_dir / "kronk.log"
    command = [str(KRONK), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--model", MODEL_ALIAS,
               "--ctx-size", str(ctx), "--slots", str(slots), "--log-level", "debug", *extra]
    (run_dir / "kronk.cmd").write_text(" ".join(command) + "\n")
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    wait_ready(f"http://127.0.0.1:{port}", process, log)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def run_client(command: Sequence[str], env: dict[str, str], proxy: CaptureProxy, proxy_port: int) -> int:
    runner = await proxy.start(proxy_port)
    try:
        child = await asyncio.create_subprocess_exec(*command, env=env, cwd=ROOT)
        return await child.wait()
    finally:
        await proxy.close()
        await runner.cleanup()


def new_run_dir(name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = E2E / "runs" / f"{name}-{stamp}"
    (run_dir / "capture").mkdir(parents=True)
    latest = E2E / "runs" / f"{name}-latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run_dir.name)
    return run_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="serve Kronk behind the capture proxy while COMMAND runs")
    run.add_argument("--name", required=True, help="run folder name: .e2e/runs/<name>-<time>")
    run.add_argument("--ctx-size", type=int, default=int(os.environ.get("E2E_CTX_SIZE", DEFAULT_CTX)))
    run.add_argument("--slots", type=int, default=int(os.environ.get("E2E_SLOTS", DEFAULT_SLOTS)))
    run.add_argument("--kronk-arg", action="append", default=[], help="extra `kronk server start` argument")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the client command after --")
    run_dir = new_run_dir(args.name)
    kronk_port, proxy_port = free_port(), free_port()
    print(f"serve: starting kronk on 127.0.0.1:{kronk_port} (ctx {args.ctx_size}, slots {args.slots}); "
          f"run folder {run_dir}", file=sys.stderr, flush=True)
    process = start_kronk(run_dir, kronk_port, args.ctx_size, args.slots, args.kronk_arg)
    proxy = CaptureProxy(f"http://127.0.0.1:{kronk_port}", run_dir / "capture")
    env = dict(os.environ, KRONK_E2E_URL=f"http://127.0.0.1:{proxy_port}", KRONK_E2E_RUN=str(run_dir),
               KRONK_E2E_MODEL=MODEL_ALIAS, KRONK_E2E_DIRECT_URL=f"http://127.0.0.1:{kronk_port}")
    try:
        return asyncio.run(run_client(command, env, proxy, proxy_port))
    except KeyboardInterrupt:
        return 130
    finally:
        stop(process)
        print(f"serve: kronk stopped; {proxy.count} requests captured in {run_dir / 'capture'}",
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
