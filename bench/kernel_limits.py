"""The operating-system limits a benchmark of tens of thousands of loopback connections meets.

Each is checked before anything starts, so a run fails at once with the setting to change
instead of minutes later with refused connects. Where the limit is a kernel setting and the
benchmark runs as root, it is raised (and says so); the per-process descriptor limit cannot
be raised here (STACK-NOTES: 20,000, `setrlimit` refused even as root), so it decides how
many processes the connections are spread over.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

# Descriptors a process keeps for itself: Redis, the database, logs, listening sockets.
FD_RESERVE = 500
SYSCTL = Path("/proc/sys")


def read_sysctl(name: str) -> list[int]:
    return [int(v) for v in (SYSCTL / name.replace(".", "/")).read_text().split()]


def sockets_per_process() -> int:
    """How many sockets one process may hold: the hard open-files limit minus a reserve."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1] - FD_RESERVE


def ephemeral_ports() -> int:
    low, high = read_sysctl("net.ipv4.ip_local_port_range")
    return high - low + 1


def _raise_sysctl(name: str, value: int, why: str) -> str:
    """Raise a kernel setting to `value` when root; else fail with the command to run."""
    current = read_sysctl(name)[0]
    if current >= value:
        return f"{name} = {current}"
    if os.geteuid() != 0:
        raise SystemExit(f"{name} is {current}; {why} needs {value}: sysctl -w {name}={value}")
    (SYSCTL / name.replace(".", "/")).write_text(str(value))
    print(f"raised {name} from {current} to {value} ({why})", flush=True)
    return f"{name} = {value} (raised from {current})"


def check(*, connections: int, servers: int, per_client: int, in_flight: int) -> dict[str, str]:
    """Fail (SystemExit with the fix) unless `connections` over `servers` fit every limit."""
    per_server = -(-connections // servers)
    room = sockets_per_process()
    if per_server > room:
        need = -(-connections // room)
        raise SystemExit(
            f"{per_server} connections per server process exceed its {room} descriptors "
            f"(hard limit minus {FD_RESERVE}): use --servers {need} or more"
        )
    if per_client > room:
        raise SystemExit(f"{per_client} sockets per load client exceed its {room} descriptors")
    # Loopback connects from one source address to one server port share this range.
    if per_server > ephemeral_ports() - 1000:
        raise SystemExit(
            f"{per_server} connections to one server port exceed the ephemeral port range "
            f"({ephemeral_ports()} ports): use more --servers"
        )
    return {
        "open_files_per_process": f"{room + FD_RESERVE} (hard limit)",
        "ephemeral_ports": str(ephemeral_ports()),
        # Both ends of each loopback connection are descriptors.
        "file_max": _raise_sysctl("fs.file-max", 2 * connections + 100_000, "the run's sockets"),
        "somaxconn": _raise_sysctl("net.core.somaxconn", min(in_flight, 65535), "the connects"),
    }
