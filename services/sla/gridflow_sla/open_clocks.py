"""Which SLA replica exports the global ``gridflow_sla_open_clocks`` gauge.

The gauge counts every running clock in the database, so each replica would report the same
number and a sum over replicas would count each clock once per replica. Exactly one replica
exports it: the one holding a PostgreSQL session advisory lock. The lock lives on a connection
of its own, outside the pool (so it takes no connection a unit of work needs, and is never idle
in a transaction); when that replica dies or its connection drops, the lock is released and
another replica takes it on its next tick. On SQLite (the embedded default, one process) the
only replica exports.
"""

from __future__ import annotations

import contextlib
import threading

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from gridflow_common.logging import get_logger

log = get_logger(__name__)

# An arbitrary key, the same in every replica: "GFSLA" in ASCII.
LOCK_KEY = 0x4746534C41


class OpenClocksExporter:
    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._engines: dict[str, sa.Engine] = {}
        # One connection per database, kept: the holder keeps its lock on it, the others ask
        # for the lock on it each tick.
        self._connections: dict[str, sa.Connection] = {}
        self._held: set[str] = set()

    def is_exporter(self, engine: sa.Engine) -> bool:
        """True when this process exports the global gauge for ``engine``'s database."""
        if engine.dialect.name != "postgresql":
            return True
        key = engine.url.render_as_string(hide_password=False)
        with self._mutex:
            try:
                return self._hold(key, engine)
            except sa.exc.DBAPIError as exc:
                # The lock went with the connection: let go, try again on the next tick.
                log.warning("open_clocks_lock_lost", error=repr(exc))
                self._drop(key)
                return False

    def _hold(self, key: str, engine: sa.Engine) -> bool:
        conn = self._connections.get(key)
        if conn is None:
            own = self._engines.get(key)
            if own is None:
                own = sa.create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
                self._engines[key] = own
            conn = self._connections[key] = own.connect()
        if key in self._held:
            # A session lock lasts as long as its connection: check the connection still does.
            conn.execute(sa.text("SELECT 1"))
            return True
        if conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar():
            self._held.add(key)
            return True
        return False

    def _drop(self, key: str, unlock: bool = False) -> None:
        held = key in self._held
        self._held.discard(key)
        conn = self._connections.pop(key, None)
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if held and unlock:
                # Said at once: a closed connection's lock lasts until its backend has gone.
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            conn.close()

    def release(self) -> None:
        """Let another replica export (tests; a process ending releases it anyway)."""
        with self._mutex:
            for key in list(self._connections):
                self._drop(key, unlock=True)


EXPORTER = OpenClocksExporter()
