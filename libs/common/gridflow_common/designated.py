"""Which replica of a service exports the service's global figures.

A global figure (the open clocks by colour, the open cases by colour and tier, a service's
outbox backlog and dead letters, the queue depth of the units) is read from the database or the
broker, so each replica would report the same number and a sum over replicas would count it once
per replica. Exactly one replica of each service exports them: the one holding that service's
PostgreSQL session advisory lock (``lock_key``). The lock lives on a connection
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


def lock_key(service: str) -> int:
    """The advisory lock key of ``service``'s designated exporter, the same in every replica:
    "GF" and the service's name in ASCII, eight bytes at most ("GFSLA" for sla)."""
    return int.from_bytes(("GF" + service.upper())[:8].encode("ascii"), "big")


class DesignatedExporter:
    def __init__(self, key: int) -> None:
        self.key = key
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
                log.warning("exporter_lock_lost", key=self.key, error=repr(exc))
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
        if conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar():
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
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            conn.close()

    def release(self) -> None:
        """Let another replica export (tests; a process ending releases it anyway)."""
        with self._mutex:
            for key in list(self._connections):
                self._drop(key, unlock=True)


_EXPORTERS: dict[str, DesignatedExporter] = {}
_EXPORTERS_MUTEX = threading.Lock()


def exporter_for(service: str) -> DesignatedExporter:
    """This process's candidate for ``service``'s designated exporter (one per service)."""
    with _EXPORTERS_MUTEX:
        exporter = _EXPORTERS.get(service)
        if exporter is None:
            exporter = _EXPORTERS[service] = DesignatedExporter(lock_key(service))
        return exporter
