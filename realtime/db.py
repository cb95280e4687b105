"""Database threads for the live paths: one thread each, keeping its SQLite connection.

`CONN_MAX_AGE` stays 0: under ASGI each ordinary HTTP request runs its sync code in a
thread of its own, so a persistent connection there is never reused and lingers until the
garbage collector runs. The live paths (chat consumers, SSE connects and replay) run their
database calls on a thread of their own here instead, which keeps its SQLite connection:
opening one costs ~1 ms (Django registers its functions, SQLite parses the schema), more
than the queries of a connect. Django still closes it when it is unusable, and a
connection left inside a transaction is closed so that it cannot hold SQLite's write lock.
It is renewed after KEEP_SECONDS: in WAL mode an open connection holds a lock on the file,
and while any connection in the process does, SQLite keeps the descriptors of connections
closed meanwhile (request threads') open for reuse instead of closing them.
Other backends are unchanged: PostgreSQL's connection goes back to the pool after each call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync
from django.db import connections
from django.db.backends.signals import connection_created

P = ParamSpec("P")
R = TypeVar("R")

KEEP_SECONDS = 60.0

_on_kept_thread = threading.local()


def _keep_new_sqlite_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Django set close_at to now (CONN_MAX_AGE = 0); on a kept thread only, give it the
    # age a CONN_MAX_AGE of KEEP_SECONDS would, so request_finished and
    # close_old_connections leave it open.
    if connection.vendor == "sqlite" and getattr(_on_kept_thread, "active", False):
        connection.close_at = time.monotonic() + KEEP_SECONDS


connection_created.connect(_keep_new_sqlite_connection, dispatch_uid="realtime.db.keep")


def tidy_connections() -> None:
    """Close this thread's connections that are unusable, too old or inside a transaction."""
    for conn in connections.all(initialized_only=True):
        sqlite = conn.vendor == "sqlite" and conn.connection is not None
        if sqlite and conn.connection.in_transaction:
            conn.close()
        else:
            conn.close_if_unusable_or_obsolete()


class _KeptSyncToAsync(SyncToAsync[P, R]):
    """Run on a DatabaseThread, tidying its connections before and after."""

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        _on_kept_thread.active = True
        tidy_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            tidy_connections()


class DatabaseThread:
    """One worker thread whose calls keep their SQLite connection between calls.

    One thread: one kept connection, and the calls stay serialised as on asgiref's single
    thread-sensitive executor. Use it as a decorator: `@thread` makes a sync function
    awaitable on it, like channels' database_sync_to_async.
    """

    def __init__(self, name: str) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def __call__(self, func: Callable[P, R]) -> _KeptSyncToAsync[P, R]:
        return _KeptSyncToAsync(func, thread_sensitive=False, executor=self.executor)


# The chat consumers' calls (messages, history, access checks).
chat_database = DatabaseThread("chat-db")
# Connects: WebSocket sessions and users, SSE requests and their replay reads. One thread
# for both: in a reconnect storm a replay read queues behind the connects that arrived
# meanwhile, and so reads them all as one batch (a replay thread of its own read smaller
# batches: streams opened sooner, at 5.2 instead of 3.3 ms of CPU per connect).
connect_database = DatabaseThread("connect-db")
