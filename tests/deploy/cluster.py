"""A replica deployment on 127.0.0.1: N `kronk server` processes, one redis-server, nginx.

The nginx configuration is the one docs/deploy.md describes, with this machine's
ports: requests carrying `X-Kronk-Session` are routed by a consistent hash of it
(sticky: a conversation keeps its replica's prompt cache), the others round-robin; a
replica that refuses connections is skipped (passive checks) and SSE passes unbuffered.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.manage.peer_support import free_port
from tests.require import missing

REPO = Path(__file__).resolve().parents[2]
SESSION_HEADER = "X-Kronk-Session"


def nginx_conf(prefix: Path, listen: int, replicas: list[int]) -> str:
    servers = "".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;\n" for port in replicas)
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    log_format replicas '$request_method $uri $status $upstream_addr "$http_x_kronk_session"';
    access_log {prefix}/access.log replicas;

    upstream kronk_any {{
{servers}        keepalive 16;
    }}
    upstream kronk_sticky {{
        hash $http_x_kronk_session consistent;
{servers}        keepalive 16;
    }}
    map $http_x_kronk_session $kronk_pool {{
        ""      kronk_any;
        default kronk_sticky;
    }}

    server {{
        listen 127.0.0.1:{listen};
        client_max_body_size 64m;
        location / {{
            proxy_pass http://$kronk_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
            proxy_next_upstream error timeout http_502;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
"""


@dataclass
class Replica:
    home: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@dataclass
class Cluster:
    root: Path
    replicas: list[Replica] = field(default_factory=list)
    nginx: subprocess.Popen[bytes] | None = None
    port: int = 0
    model: str = ""
    """The replicas' default model (a GGUF path: the name requests use)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[tuple[str, str, int, str, str]]:
        """(method, path, status, upstream address(es), session) per request nginx finished."""
        rows = []
        for line in (self.root / "nginx" / "access.log").read_text().splitlines():
            match = re.fullmatch(r'(\S+) (\S+) (\d+) (.*) "(.*)"', line)
            if match:
                rows.append((match[1], match[2], int(match[3]), match[4], match[5]))
        return rows

    def start_replicas(self, count: int, model: Path, keys: Path, redis_url: str) -> None:
        self.model = str(model)
        log_dir = self.root / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            home = self.root / f"replica{index}"
            shutil.copytree(keys, home / "keys")  # shared keys: every replica verifies the same tokens
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("KRONK_") or k == "KRONK_LIB_PATH"}
            env.update(KRONK_HOME=str(home), KRONK_RATE_STORE=redis_url, PYTHONPATH=str(REPO), NO_COLOR="1")
            process = subprocess.Popen(
                [sys.executable, "-m", "kronk", "server", "start", "--host", "127.0.0.1", "--port", str(port),
                 "--model", str(model), "--model-paths", "--security", "full", "--ctx-size", "2048", "--slots", "2",
                 "--threads", "1", "--log-level", "warning"],
                env=env, stdout=(log_dir / f"replica{index}.log").open("wb"), stderr=subprocess.STDOUT, cwd=home)
            self.replicas.append(Replica(home, port, process))
        for replica in self.replicas:
            self._wait(replica)

    def _wait(self, replica: Replica) -> None:
        """Until /v1/readiness answers 200 (the default model is loaded): what a balancer's health check asks."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if replica.process.poll() is not None:
                raise AssertionError(f"replica {replica.url} exited: "
                                     + (self.root / "logs" / f"{replica.home.name}.log").read_text()[-2000:])
            try:
                if requests.get(f"{replica.url}/v1/readiness", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"replica {replica.url} never became ready")

    def start_nginx(self) -> None:
        binary = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
        if binary is None:
            missing("nginx", "nginx is not installed (apt-get install -y nginx-light; see scripts/setup.sh)")
        prefix = self.root / "nginx"
        prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf(prefix, self.port, [r.port for r in self.replicas]))
        self.nginx = subprocess.Popen([binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf),
                                       "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.nginx.poll() is None, (prefix / "error.log").read_text()
            try:
                requests.get(f"{self.url}/v1/liveness", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise AssertionError("nginx did not start")

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        for replica in self.replicas:
            if replica.process.poll() is None:
                replica.process.terminate()
        for replica in self.replicas:
            try:
                replica.process.wait(20)
            except subprocess.TimeoutExpired:
                replica.kill9()
