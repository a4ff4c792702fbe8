"""ggml's RPC backend: a model's layers on `kronk rpc-server`s (docs/rpc.md).

ggml-rpc aborts the whole process when a connection fails (kronk._native.abort), so
this module keeps it from ever getting there where it can, and contains it where it
cannot:

- before ggml connects, `probe` speaks the protocol's HELLO to each server itself, so an
  unreachable, busy (an RPC server serves one client at a time) or incompatible server
  is a clean `RPCUnavailableError`;
- whatever talks to the servers while a model loads runs on a helper thread
  (`run_guarded`), so a server dying then fails the load instead of hanging it;
- a server dying later (mid-request) reaches the `watch` callbacks of the models using
  it: the engine fails its requests and refuses new ones until the model is unloaded.
  The threads caught inside ggml-rpc stay parked, and what they hold (the model's memory,
  its connections) is abandoned, never freed.

ggml keeps one connection per endpoint for the life of the process, and a broken one is
never replaced, so an endpoint that failed is refused until the server restarts.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from kronk._native import abort
from kronk._native.loader import libraries
from kronk.errors import ConfigError, RPCUnavailableError

logger = logging.getLogger("kronk.llama")

T = TypeVar("T")

RPC_REGISTRY = "RPC"
ADD_SERVER = b"ggml_backend_rpc_add_server"
PROTO_MAJOR = 7
"""RPC_PROTO_MAJOR_VERSION of the pinned ggml-rpc.h; the server must speak the same."""
_HELLO = 14  # RPC_CMD_HELLO, fixed by the protocol for every version
_CAPS_SIZE = 24  # RPC_CONN_CAPS_SIZE (transport.h)
PROBE_TIMEOUT = 5.0
LOAD_TIMEOUT = 600.0


def parse_endpoints(value: object) -> tuple[str, ...]:
    """`host:port` endpoints from a comma list or a YAML list; ConfigError on a malformed one.

    ggml-rpc resolves hosts over IPv4 only (gethostbyname), so IPv6 literals are refused here.
    """
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    out: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"rpc: {text!r} is not host:port")
        if ":" in host or host.startswith("["):
            raise ConfigError(f"rpc: {text!r}: ggml-rpc connects over IPv4 only; use an IPv4 address or a name")
        out.append(f"{host}:{int(port)}")
    if len(set(out)) != len(out):
        raise ConfigError("rpc: an endpoint is listed twice")
    return tuple(out)


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def probe(endpoint: str, timeout: float = PROBE_TIMEOUT) -> tuple[int, int, int]:
    """Connect and exchange HELLO; the server's protocol version, or RPCUnavailableError saying why."""
    host, port = _split(endpoint)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack("<BQ", _HELLO, _CAPS_SIZE) + bytes(_CAPS_SIZE))
            (size,) = struct.unpack("<Q", _recv_exact(sock, 8))
            if size != 4 + _CAPS_SIZE:
                raise RPCUnavailableError(f"RPC server {endpoint} answered HELLO with {size} bytes: "
                                          "not a compatible ggml rpc-server")
            major, minor, patch, _pad = _recv_exact(sock, size)[:4]
    except TimeoutError:
        raise RPCUnavailableError(f"RPC server {endpoint} did not answer within {timeout:g}s "
                                  "(busy with another client, or not an RPC server)") from None
    except OSError as exc:
        raise RPCUnavailableError(f"RPC server {endpoint} is unreachable: {exc.strerror or exc}") from None
    if major != PROTO_MAJOR:
        raise RPCUnavailableError(f"RPC server {endpoint} speaks protocol {major}.{minor}.{patch}; "
                                  f"this build needs {PROTO_MAJOR}.x")
    return major, minor, patch


def is_down(endpoint: str, timeout: float = 1.0) -> bool:
    """A plain TCP connect is refused (or the host is unreachable). A timeout does not count: a
    live server busy with its one client leaves new connections queued, and its queue is short."""
    try:
        with socket.create_connection(_split(endpoint), timeout=timeout):
            return False
    except TimeoutError:
        return False
    except OSError:
        return True


class _Failures:
    """Endpoints whose connection broke in this process, and who to tell when one breaks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.broken: dict[str, str] = {}
        self.wedged: str | None = None
        """Set when a connect inside ggml-rpc failed: that thread parked holding ggml-rpc's global
        connection lock, so every later connection in this process would wait forever."""
        self.in_use: dict[str, int] = {}
        """Loaded models per endpoint: while any holds buffers there, ggml keeps its connection open."""
        self._watchers: dict[int, tuple[frozenset[str], Callable[[str], None]]] = {}
        self._next = 0
        self._installed = False

    def install(self) -> None:
        with self._lock:
            if self._installed:
                return
            self._installed = True
        libs = libraries()
        abort.install(libs.ffi, libs.llama)
        abort.on_rpc_abort(self.on_abort)

    def watch(self, endpoints: Iterable[str], callback: Callable[[str], None]) -> int:
        with self._lock:
            self._next += 1
            self._watchers[self._next] = (frozenset(endpoints), callback)
            return self._next

    def unwatch(self, token: int) -> None:
        with self._lock:
            self._watchers.pop(token, None)

    def on_abort(self, message: str) -> None:
        """On ggml-rpc's thread, before it parks: find the dead endpoints and tell their watchers."""
        with self._lock:
            watchers = list(self._watchers.items())
        endpoints = set().union(*(eps for _, (eps, _cb) in watchers)) if watchers else set()
        dead = {ep for ep in endpoints if is_down(ep)} or endpoints  # none refuses (a host gone silent): all
        reason = message.split(": ", 1)[-1].strip()
        if reason.startswith(("Failed to connect", "RPC handshake failed", "Failed to parse endpoint")):
            self.wedged = reason
        with self._lock:
            for endpoint in dead:
                self.broken.setdefault(endpoint, reason)
        for token, (eps, callback) in watchers:
            hit = sorted(eps & dead)
            if not hit:
                continue
            self.unwatch(token)
            try:
                callback(f"RPC server {', '.join(hit)} failed: {reason}")
            except Exception:
                logger.exception("an RPC failure callback raised")


_FAILURES = _Failures()


def watch(endpoints: Iterable[str], callback: Callable[[str], None]) -> int:
    """Call `callback(reason)` (once, on a foreign thread) when a connection to one of `endpoints` breaks."""
    _FAILURES.install()
    return _FAILURES.watch(endpoints, callback)


def unwatch(token: int) -> None:
    _FAILURES.unwatch(token)


def hold(endpoints: Iterable[str]) -> None:
    """A model now holds buffers on `endpoints` (so ggml's connections to them stay open)."""
    with _FAILURES._lock:
        for endpoint in endpoints:
            _FAILURES.in_use[endpoint] = _FAILURES.in_use.get(endpoint, 0) + 1


def release(endpoints: Iterable[str]) -> None:
    with _FAILURES._lock:
        for endpoint in endpoints:
            left = _FAILURES.in_use.get(endpoint, 0) - 1
            if left > 0:
                _FAILURES.in_use[endpoint] = left
            else:
                _FAILURES.in_use.pop(endpoint, None)


def check_endpoints(endpoints: Sequence[str], timeout: float = PROBE_TIMEOUT) -> None:
    """Refuse endpoints that broke earlier in this process, then HELLO each server this process is
    not connected to already (an RPC server serves one client at a time: a second connection from
    here would wait behind ggml's own)."""
    if _FAILURES.wedged is not None:
        raise RPCUnavailableError(f"ggml-rpc failed to connect earlier ({_FAILURES.wedged}) and cannot connect "
                                  "again in this process: restart the Kronk server")
    for endpoint in endpoints:
        reason = _FAILURES.broken.get(endpoint)
        if reason is not None:
            raise RPCUnavailableError(
                f"the connection to RPC server {endpoint} broke earlier ({reason}); ggml-rpc cannot reconnect "
                "to it in this process: restart the Kronk server, or load the model without it")
    for endpoint in endpoints:
        if endpoint not in _FAILURES.in_use:
            probe(endpoint, timeout)


def run_guarded(endpoints: Sequence[str], fn: Callable[[], T], timeout: float = LOAD_TIMEOUT) -> T:
    """Run `fn` (which talks to the RPC servers) on a helper thread; RPCUnavailableError if one
    of `endpoints` breaks meanwhile (the helper is then left parked inside ggml-rpc)."""
    done: Future[T] = Future()

    def failed(reason: str) -> None:
        if not done.done():
            done.set_exception(RPCUnavailableError(reason))

    token = watch(endpoints, failed)

    def work() -> None:
        try:
            result = fn()
        except BaseException as exc:
            if not done.done():
                done.set_exception(exc)
            return
        if not done.done():
            done.set_result(result)

    threading.Thread(target=work, name="kronk-rpc-load", daemon=True).start()
    try:
        return done.result(timeout=timeout)
    except FutureTimeout:
        raise RPCUnavailableError(f"loading over RPC ({', '.join(endpoints)}) took over {timeout:g}s") from None
    finally:
        unwatch(token)


def rpc_devices(endpoints: Sequence[str]) -> list[Any]:
    """The ggml devices of the RPC servers at `endpoints` (connects to each; call via run_guarded)."""
    libs = libraries()
    ffi, lib = libs.ffi, libs.llama
    reg = lib.ggml_backend_reg_by_name(RPC_REGISTRY.encode())
    if reg == ffi.NULL:
        raise RPCUnavailableError(f"the llama.cpp build in {libs.folder} has no RPC backend; "
                                  "rebuild it from source (`kronk libs --upgrade --source sdist`)")
    address = lib.ggml_backend_reg_get_proc_address(reg, ADD_SERVER)
    if address == ffi.NULL:
        raise RPCUnavailableError("the RPC backend does not export ggml_backend_rpc_add_server")
    add_server = ffi.cast("kronk_rpc_add_server_fn", address)
    devices = []
    for endpoint in endpoints:
        server = add_server(endpoint.encode())
        if server == ffi.NULL:
            raise RPCUnavailableError(f"RPC server {endpoint} reports no devices")
        devices.extend(lib.ggml_backend_reg_dev_get(server, i) for i in range(lib.ggml_backend_reg_dev_count(server)))
    return devices


def local_offload_devices() -> list[Any]:
    """This machine's GPUs (none on a CPU build): they take layers beside the RPC servers."""
    libs = libraries()
    ffi, lib = libs.ffi, libs.llama
    out = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        if lib.ggml_backend_dev_type(dev) in (lib.GGML_BACKEND_DEVICE_TYPE_GPU, lib.GGML_BACKEND_DEVICE_TYPE_IGPU):
            reg = lib.ggml_backend_dev_backend_reg(dev)
            if ffi.string(lib.ggml_backend_reg_name(reg)) != RPC_REGISTRY.encode():
                out.append(dev)
    return out


def offloaded_layers(n_layer: int, n_remote: int) -> int:
    """On a CPU-only host, the layers (+1: the output layer) for the RPC devices so that the
    local CPU keeps an equal share: n_remote of every n_remote + 1."""
    return -(-(n_layer + 1) * n_remote // (n_remote + 1))
