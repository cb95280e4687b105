"""A Sentinel-managed Redis for fault tests: a primary, a replica and three sentinels.

Real redis-server processes (the one config.redis_server finds, run with `--sentinel` for
the sentinels) on free TCP ports in a temporary directory, with a short
`down-after-milliseconds`, so that killing the primary makes the sentinels promote the
replica within seconds. `start()` returns once every sentinel knows the replica and the
other two sentinels (until then a failover could not be agreed on); `stop()` kills
every process it started, whatever state the group is in.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from config.redis_server import redis_executable
from tests.support.servers import free_port

MASTER = "pulse"
HOST = "127.0.0.1"


class Node:
    """One redis-server process (a data node or a sentinel) on a free port."""

    def __init__(self, directory: Path, name: str, args: list[str]) -> None:
        self.directory, self.name, self.args = directory, name, args
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.killed = False

    def start(self, conf: str | None = None) -> Node:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / f"{self.name}.log"
        if conf is None:
            command = [redis_executable(), "--port", str(self.port), *self.args]
        else:
            # A sentinel rewrites its config file as it learns: it must be its own, writable.
            path = self.directory / f"{self.name}.conf"
            path.write_text(f"port {self.port}\n{conf}")
            command = [redis_executable(), str(path), "--sentinel"]
        command += ["--bind", HOST, "--dir", str(self.directory), "--logfile", str(log)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=1, decode_responses=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        self.killed = True
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


class SentinelGroup:
    """Primary, replica, three sentinels; `url` is the REDIS_URL that points Pulse at them."""

    def __init__(
        self, directory: Path, *, down_after_ms: int = 1000, failover_timeout_ms: int = 5000
    ) -> None:
        data = ["--save", "", "--appendonly", "no", "--maxclients", "10000"]
        self.primary = Node(directory, "primary", list(data))
        self.replica = Node(directory, "replica", list(data))
        self.replica.args += ["--replicaof", HOST, str(self.primary.port)]
        self.sentinels = [Node(directory, f"sentinel-{i}", []) for i in range(3)]
        self.conf = (
            f"sentinel monitor {MASTER} {HOST} {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )

    @property
    def url(self) -> str:
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def nodes(self) -> list[Node]:
        return [self.primary, self.replica, *self.sentinels]

    def start(self, timeout: float = 60.0) -> SentinelGroup:
        try:
            self.primary.start()
            self._wait(lambda: self.primary.client().ping(), timeout, "the primary to answer")
            self.replica.start()
            self._wait(self._replica_synced, timeout, "the replica to sync")
            for sentinel in self.sentinels:
                sentinel.start(self.conf)
            self._wait(self._sentinels_ready, timeout, "the sentinels to find each other")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes():
            node.stop()

    def primary_port(self) -> int | None:
        """The primary's port as a majority of the live sentinels name it (None: no majority)."""
        named = []
        for sentinel in self.sentinels:
            if sentinel.alive():
                with contextlib.suppress(redis.RedisError, OSError, KeyError):
                    named.append(int(sentinel.client().sentinel_master(MASTER)["port"]))
        for port in set(named):
            if named.count(port) >= 2:
                return port
        return None

    def node_on(self, port: int) -> Node:
        return next(node for node in (self.primary, self.replica) if node.port == port)

    def kill_primary(self) -> Node:
        """SIGKILL the node the sentinels call the primary; returns it."""
        node = self.node_on(self.primary_port() or self.primary.port)
        node.kill()
        return node

    def failover(self) -> Node:
        """Ask the sentinels for a planned failover (the old primary stays, as a replica);
        returns the old primary."""
        node = self.node_on(self.primary_port() or self.primary.port)
        self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", MASTER)
        return node

    def wait_for_failover(self, old: Node, timeout: float = 60.0) -> Node:
        """Block until the sentinels name a primary other than `old`, and it answers as one."""

        def promoted() -> bool:
            port = self.primary_port()
            if port is None or port == old.port:
                return False
            return self.node_on(port).client().info("replication")["role"] == "master"

        self._wait(promoted, timeout, "the sentinels to promote the replica")
        return self.node_on(self.primary_port())

    def _replica_synced(self) -> bool:
        return self.replica.client().info("replication").get("master_link_status") == "up"

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            state = sentinel.client().sentinel_master(MASTER)
            if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                return False
        return True

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes():
                if node.process is not None and not node.killed and not node.alive():
                    err = node.process.stderr.read().decode() if node.process.stderr else ""
                    raise RuntimeError(f"{node.name} exited: {err.strip()} (see its log)")
            try:
                if ready():
                    return
            except (redis.RedisError, OSError, KeyError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
