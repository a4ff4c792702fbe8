"""The server as an OS process: its pid file, log file, detached start and stop.

The running server owns `server_dir()/kronk.pid` (JSON: pid, url, started_at, log),
written atomically when it listens and removed when it exits; `kronk server
start` refuses to start a second one and `stop` signals the pid it names. A stale
file (its process gone) is ignored and cleaned up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from kronk import paths
from kronk.errors import KronkError

LOG_ROTATE_BYTES = 20 * 1024 * 1024


def pid_path() -> Path:
    return paths.server_dir() / "kronk.pid"


def log_path() -> Path:
    return paths.server_dir() / "kronk.log"


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """The pid file's content: which process serves, where clients reach it, where it logs."""

    pid: int
    url: str
    """The base URL the server listens on (what `kronk server stop/status` and the CLI call)."""
    started_at: float
    """Epoch seconds."""
    log: str | None = None
    """The log file of a server `kronk server start --detach` started; None when it logs to a terminal."""


def process_alive(pid: int) -> bool:
    """True if `pid` runs and (where /proc tells) is a Python process, not a recycled pid."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return False  # a zombie: exited, not yet reaped by its parent
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"python" in cmdline.lower() or b"kronk" in cmdline.lower()


def read_record() -> ServerRecord | None:
    """The running server's record; None (and the stale file removed) if it is not running."""
    path = pid_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = ServerRecord(pid=int(data["pid"]), url=str(data["url"]), started_at=float(data["started_at"]),
                              log=data.get("log"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    if not process_alive(record.pid):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return record


def write_record(url: str, log: Path | None) -> ServerRecord:
    record = ServerRecord(pid=os.getpid(), url=url, started_at=time.time(), log=str(log) if log else None)
    paths.atomic_write_text(pid_path(), json.dumps(asdict(record)) + "\n")
    return record


def remove_record() -> None:
    """Remove the pid file if it is this process's (never another server's)."""
    remove_record_of(os.getpid())


def remove_record_of(pid: int) -> None:
    """Remove the pid file if it names `pid`."""
    path = pid_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("pid") == pid:
        with contextlib.suppress(OSError):
            path.unlink()


def rotate_log(path: Path) -> None:
    """Keep one previous log: a large kronk.log becomes kronk.log.1 before a new start."""
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))


def spawn_detached(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m kronk <args>` in its own session, output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(log)
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "kronk", *args],
            stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env={**os.environ, "KRONK_SERVER_LOG": str(log)},
        )


def readiness(url: str, timeout: float = 2.0) -> tuple[int, dict[str, object]]:
    """(status, body) of GET /v1/readiness; (0, {}) if nothing answers."""
    try:
        with urllib.request.urlopen(url + "/v1/readiness", timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        return exc.code, body if isinstance(body, dict) else {}
    except (urllib.error.URLError, OSError, ValueError):
        return 0, {}


class StartFailed(KronkError, code="server_start_failed"):
    """The detached server exited or reported an error before it became ready."""


def wait_ready(child: subprocess.Popen[bytes], url: str, timeout: float, log: Path) -> None:
    """Block until the child answers readiness 200; raise StartFailed with the reason otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        code = child.poll()
        if code is not None:
            raise StartFailed(f"the server exited with code {code} before it was ready:\n{tail(log, 15)}")
        status, body = readiness(url, timeout=1.0)
        if status == 200:
            return
        if status == 503 and body.get("status") == "failed":
            raise StartFailed(f"the server could not load its default model: {body.get('error')}")
        if time.monotonic() >= deadline:
            raise StartFailed(f"the server (pid {child.pid}) is not ready after {timeout:.0f}s; it is still "
                              f"starting — see `kronk server logs`")
        time.sleep(0.1)


def stop_process(pid: int, timeout: float, force: bool) -> bool:
    """SIGTERM `pid` and wait for it to exit; SIGKILL after `timeout` if `force`. True if it exited."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.1)
    if force:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        for _ in range(50):
            if not process_alive(pid):
                return True
            time.sleep(0.1)
    return not process_alive(pid)


def tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a text file ("" if it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block = min(size, max(4096, lines * 512))
            handle.seek(size - block)
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
