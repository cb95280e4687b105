"""Debian's nginx as a test process, in front of server processes, with the shipped site.

The site is deploy/nginx/pulse.conf rendered by deploy/render_nginx.py exactly as an
operator renders it (plain HTTP on a free port, or HTTPS with a throwaway certificate); only
the main context around it (pid, logs, temp dirs in a private directory, `daemon off`) is
the test's, as /etc/nginx/nginx.conf is the operator's. `reload()` changes the upstreams
under open connections, as an operator does in a rolling restart.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from deploy.render_nginx import FAIL_TIMEOUT_SECONDS, render
from tests.support.servers import ROOT, free_port

NGINX = "/usr/sbin/nginx"
MIME_TYPES = "/etc/nginx/mime.types"

MAIN_CONF = """\
daemon off;
{user}
worker_processes 1;
# A reload leaves open streams on the old worker; they are closed (and reconnect) by then.
worker_shutdown_timeout 10s;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
events {{ worker_connections {worker_connections}; }}
http {{
    include {mime_types};
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/pulse.conf;
}}
"""


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway certificate for `host` (an IP address): (certificate, key) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "site.pem", directory / "site.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class Nginx:
    """nginx on 127.0.0.1:<free port>, proxying to `upstreams` ("host:port" each)."""

    host = "127.0.0.1"

    def __init__(
        self,
        upstreams: Sequence[str],
        *,
        directory: Path | None = None,
        tls: tuple[Path, Path] | None = None,
        metrics_allow: Sequence[str] = (),
        worker_connections: int = 4096,
    ) -> None:
        """`tls`: (certificate, key) renders the HTTPS site, which also redirects plain
        HTTP from `http_url`. `worker_connections`: each proxied client takes two (its own
        and the upstream's)."""
        self.worker_connections = worker_connections
        self.upstreams = list(upstreams)
        self.tls = tls
        self.metrics_allow = list(metrics_allow)  # change, then reload()
        self.dir = directory or Path(tempfile.mkdtemp(prefix="nginx-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """With TLS: where plain HTTP is answered with a redirect."""
        return f"http://{self.host}:{self.http_port}"

    @property
    def error_log(self) -> Path:
        return self.dir / "error.log"

    def write_config(self) -> None:
        site = render(
            upstreams=self.upstreams,
            listen=f"{self.host}:{self.port}",
            server_name=self.host,
            static_root=str(ROOT / "static"),
            tls_certificate=str(self.tls[0]) if self.tls else "",
            tls_certificate_key=str(self.tls[1]) if self.tls else "",
            http_listen=f"{self.host}:{self.http_port}",
            metrics_allow=self.metrics_allow,
        )
        (self.dir / "pulse.conf").write_text(site)
        # As root, nginx's workers would run as nobody, who cannot use this private dir.
        user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
        main = MAIN_CONF.format(
            user=user,
            dir=self.dir,
            mime_types=MIME_TYPES,
            worker_connections=self.worker_connections,
        )
        (self.dir / "nginx.conf").write_text(main)

    def command(self, *extra: str) -> list[str]:
        conf = self.dir / "nginx.conf"
        return [NGINX, "-p", str(self.dir), "-c", str(conf), "-e", str(self.error_log), *extra]

    def check(self) -> None:
        """`nginx -t` on the rendered config; raises with nginx's message if it is invalid."""
        result = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {result.stderr}")

    def start(self, timeout: float = 15.0) -> Nginx:
        self.write_config()
        self.check()
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: see {self.error_log}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port} within {timeout} s")

    def reload(self, upstreams: Sequence[str] | None = None, timeout: float = 15.0) -> None:
        """Re-render (with new upstreams, if given) and reload: new connections use the new
        config at once, open ones stay on the old workers until they close."""
        assert self.process is not None and self.process.poll() is None, "nginx is not running"
        if upstreams is not None:
            self.upstreams = list(upstreams)
        self.write_config()
        self.check()
        before = self._log_counts()
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        # Done when a new worker runs and the old one stopped accepting (it keeps serving
        # its open connections for up to worker_shutdown_timeout).
        while any(now <= then for now, then in zip(self._log_counts(), before, strict=True)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not reload within {timeout} s: {self.error_log}")
            time.sleep(0.05)
        time.sleep(0.1)  # the old worker logs "shutting down" just before it closes its sockets

    async def take_back(self) -> None:
        """After a process restarted: what the README tells an operator to do before the
        next restart. nginx skips the process for FAIL_TIMEOUT_SECONDS after it refused a
        connection, then lets one request through and waits for it to end: a stream as that
        first request would keep the process out for another fail_timeout, so short requests
        go first."""
        await asyncio.sleep(FAIL_TIMEOUT_SECONDS + 0.5)
        verify = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else True
        async with httpx.AsyncClient(base_url=self.url, timeout=10, verify=verify) as client:
            for _ in range(3):
                response = await client.get("/healthz")
                assert response.status_code == 200, response.text
                await asyncio.sleep(0.2)

    def _log_counts(self) -> tuple[int, int]:
        """Workers started and workers told to shut down, from the error log."""
        try:
            log = self.error_log.read_text()
        except FileNotFoundError:
            return 0, 0
        return log.count("start worker process "), log.count("gracefully shutting down")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
