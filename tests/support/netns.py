"""A private network namespace for real packet loss: a server inside, clients on the host.

The namespace is joined to the host by a veth pair. The server listens inside it; clients
in the test process connect from addresses on the host end of the pair, one address per
role, so one client can vanish (`vanish`: a blackhole rule in the namespace silently drops
every packet from its address before the server's TCP sees it, so the server's writes
still go out but are never acknowledged, no FIN or RST arrives and nothing answers: as
when a peer's cable is pulled) while the others and the test's own requests flow on.
Everything lives in the namespace or on the veth pair, and deleting the namespace removes
it all. Needs root (CAP_NET_ADMIN) and iproute2's `ip`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from tests.support.servers import Server, database_url

PREFIX = "pulse-ho-"
SERVER_PORT = 8000


def local_database_url() -> str:
    """The test database as seen from inside the namespace, whose loopback is its own:
    SQLite is a file; PostgreSQL is reached over its unix socket instead of TCP."""
    url = database_url()
    if not url.startswith("postgres"):
        return url
    with connection.cursor() as cursor:
        cursor.execute("SHOW unix_socket_directories")
        directory = cursor.fetchone()[0].split(",")[0].strip()
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    port = s.get("PORT") or 5432
    return f"postgres://{user}{password}@{quote(directory, safe='')}:{port}/{s['NAME']}"


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class NetLab:
    """One namespace named after this process, with a /29 on its veth pair."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.name = f"{PREFIX}{pid}"
        self.host_if, self.ns_if = f"pho{pid}h", f"pho{pid}n"  # under 16 characters
        net = f"10.252.{pid % 250}"
        self.server_ip = f"{net}.2"
        self.client_ips = (f"{net}.1", f"{net}.5")  # the first one also answers the ns

    def create(self) -> NetLab:
        if shutil.which("ip") is None:
            raise RuntimeError("this test needs iproute2's `ip` (apt-get install iproute2)")
        sweep_stale()
        try:
            ip("netns", "add", self.name)
            ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
               "netns", self.name)  # fmt: skip
            for address in self.client_ips:
                ip("addr", "add", f"{address}/29", "dev", self.host_if)
            ip("link", "set", self.host_if, "up")
            ip("-n", self.name, "addr", "add", f"{self.server_ip}/29", "dev", self.ns_if)
            ip("-n", self.name, "link", "set", self.ns_if, "up")
            ip("-n", self.name, "link", "set", "lo", "up")
            # Local delivery is decided by the first rule (pref 0): move it after the slot
            # `vanish` uses, or a blackhole could never stop packets to the server.
            ip("-n", self.name, "rule", "add", "pref", "100", "lookup", "local")
            ip("-n", self.name, "rule", "del", "pref", "0")
        except RuntimeError as exc:
            self.delete()
            raise RuntimeError(
                f"cannot build a network namespace (needs root with CAP_NET_ADMIN): {exc}"
            ) from exc
        return self

    def vanish(self, address: str) -> None:
        """Drop every packet from `address` inside the namespace, without a word back."""
        ip("-n", self.name, "rule", "add", "pref", "10", "from", address, "blackhole")

    def delete(self) -> None:
        remove(self.name)
        with contextlib.suppress(RuntimeError):  # gone with the namespace unless it failed
            ip("link", "del", self.host_if)


def remove(name: str) -> None:
    """Stop what still runs in namespace `name` (servers this module started), delete it."""
    with contextlib.suppress(RuntimeError):
        for pid in ip("netns", "pids", name).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        ip("netns", "del", name)


def sweep_stale() -> None:
    """Namespaces left by a run of this module that was killed before its cleanup."""
    for line in ip("netns", "list").splitlines():
        name = line.split(" ", 1)[0]
        owner = name.removeprefix(PREFIX)
        if name.startswith(PREFIX) and owner.isdigit() and not Path(f"/proc/{owner}").exists():
            remove(name)


class NamespacedServer(Server):
    """A server process (daphne or uvicorn, from serve.py's command line) inside the lab."""

    def __init__(self, lab: NetLab, command: list[str], *, env: dict[str, str], log: Path):
        self.lab, self.server_command, self.env, self.log_path = lab, command, env, log
        self.host, self.port = lab.server_ip, SERVER_PORT
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        # `ip netns exec` execs the command: the process is the server itself.
        return ["ip", "netns", "exec", self.lab.name, *self.server_command]

    def environment(self) -> dict[str, str]:
        return dict(os.environ, DATABASE_URL=local_database_url(), PYTHONUNBUFFERED="1", **self.env)
