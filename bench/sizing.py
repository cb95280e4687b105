"""A deployment for N concurrent users, on paper, from one capacity run's measured figures.

The arithmetic behind the README's sizing, kept beside the benchmark so that a new run
reprints it from its own numbers. Assumptions, each a parameter:
- every user holds `per_user` connections (2: an SSE stream on every page and a chat socket);
- idle work (keep-alives, heartbeats, pings) may use `idle_share` of the cores (0.5), the
  rest is headroom for fan-out and connects;
- after a deploy or a crash everyone reconnects within `reconnect_s` (60 s: the clients'
  backoff jitter spreads them);
- one server process per core, and at most `per_process` sockets each (the descriptor limit
  here; raise `ulimit -n` on a real host and this stops binding).
"""

from __future__ import annotations

import math
from typing import Any


def plan(
    full: dict[str, Any],
    publish: dict[str, Any],
    base_rss_mb: float,
    users: int,
    *,
    per_user: int = 2,
    idle_share: float = 0.5,
    reconnect_s: float = 60.0,
    per_process: int = 19_500,
) -> dict[str, Any]:
    """Cores, processes, memory and Redis load for `users`, from the full stage's figures."""
    conns = users * per_user
    idle_cores = full["idle_cores_per_10k"] * conns / 10_000
    connect_ms = (full["sse_connect_net_cpu_ms"] + full["ws_connect_net_cpu_ms"]) / 2
    reconnect_cores = conns * connect_ms / 1000 / reconnect_s
    cores = math.ceil(max(idle_cores / idle_share, reconnect_cores, 1))
    processes = max(cores, math.ceil(conns / per_process))
    memory_gb = (conns * full["rss_per_conn_kb"] / 2**20) + processes * base_rss_mb / 1024
    announce_us = full["announcement"]["burst"]["net_cpu_us_per_delivery"]
    # One SSE stream per user gets the announcement; the idle work keeps its share.
    spare = cores * (1 - idle_share)
    redis_idle = full["redis_idle_cores"] / full["connections"] * conns
    return {
        "users": users,
        "connections": conns,
        "cores": cores,
        "cores_idle_work": round(idle_cores, 1),
        "cores_reconnect": round(reconnect_cores, 1),
        "processes": processes,
        "memory_gb": round(memory_gb, 1),
        "announcement_to_all_s": round(users * announce_us / 1e6 / spare, 2),
        "redis_idle_cores": round(redis_idle, 2),
        "redis_publishes_per_core_s": publish["publishes_per_redis_cpu_s"],
    }


def show(plans: list[dict[str, Any]]) -> None:
    print(
        "\n== sizing on paper (2 connections per user; idle work at most half the cores; "
        "everyone back within 60 s of a restart)"
    )
    for p in plans:
        print(
            f"{p['users']:>9} users, {p['connections']} connections: {p['cores']} cores "
            f"(idle work {p['cores_idle_work']}, reconnect storm {p['cores_reconnect']}), "
            f"{p['processes']} processes, {p['memory_gb']} GB; an announcement to all takes "
            f"~{p['announcement_to_all_s']} s of the spare cores; Redis: "
            f"{p['redis_idle_cores']} cores of idle traffic",
            flush=True,
        )
