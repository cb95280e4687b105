"""The chat consumer's database calls: one thread per process that keeps its SQLite connection.

`CONN_MAX_AGE` stays 0: under ASGI each HTTP request runs its sync code in a thread of its
own, so a persistent connection there is never reused and lingers until the garbage
collector runs. The chat consumer's calls all run on the one thread here instead, which
keeps its SQLite connection: opening one costs ~1 ms per chat message (Django registers its
functions, SQLite parses the schema). Django still closes it when it is unusable, and a
connection left inside a transaction is closed so that it cannot hold SQLite's write lock.
It is renewed after KEEP_SECONDS: in WAL mode an open connection holds a lock on the file,
and while any connection in the process does, SQLite keeps the descriptors of connections
closed meanwhile (request threads') open for reuse instead of closing them.
Other backends are unchanged: PostgreSQL's connection goes back to the pool after each call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync
from django.db import connections

P = ParamSpec("P")
R = TypeVar("R")

KEEP_SECONDS = 60.0

# One thread: one kept connection, and the calls stay serialised as on asgiref's
# single thread-sensitive executor that they ran on before.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-db")
_kept: dict[str, Any] = {}  # alias -> the SQLite connection given KEEP_SECONDS; that thread only


def _tidy_connections() -> None:
    for conn in connections.all(initialized_only=True):
        if conn.vendor == "sqlite" and conn.connection is not None:
            if conn.connection.in_transaction:
                conn.close()
                continue
            if _kept.get(conn.alias) is not conn.connection:
                # New: Django set close_at to now (CONN_MAX_AGE = 0); for this thread only,
                # give it the age a CONN_MAX_AGE of KEEP_SECONDS would.
                conn.close_at = time.monotonic() + KEEP_SECONDS
                _kept[conn.alias] = conn.connection
        conn.close_if_unusable_or_obsolete()


class ChatDatabaseSyncToAsync(SyncToAsync[P, R]):
    """Run on the chat database thread, tidying its connections before and after."""

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        _tidy_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            _tidy_connections()


def chat_database(func: Callable[P, R]) -> ChatDatabaseSyncToAsync[P, R]:
    """Make `func` awaitable on the chat database thread, like database_sync_to_async."""
    return ChatDatabaseSyncToAsync(func, thread_sensitive=False, executor=_executor)
