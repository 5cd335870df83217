"""One service's handlers on a SQLite file with a real ServiceRuntime and the Lucheng
jurisdiction: events go in through the idempotent consumer, what the handler emitted is read
back from its outbox. No broker, no other service."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.db import make_engine, platform_metadata
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_common.service import ServiceDefinition
from tests.unit.test_consumer_reliability import ManualClock

LUCHENG = Path(__file__).resolve().parents[2] / "libs/common/gridflow_common/fixtures/lucheng"
CST = dt.timezone(dt.timedelta(hours=8))


def lucheng_files() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(LUCHENG.glob("*.csv"))}


class ServiceUnderTest:
    def __init__(
        self,
        definition: ServiceDefinition,
        folder: Path,
        now: dt.datetime,
        files: dict[str, str] | None = None,
    ):
        self.definition = definition
        self.engine = make_engine(f"sqlite:///{folder}/{definition.name}.sqlite")
        platform_metadata.create_all(self.engine)
        definition.metadata.create_all(self.engine)
        self.clock = ManualClock(now)
        self.store = JurisdictionStore(self.engine)
        self.version = self.store.install(files or lucheng_files())
        self.runtime = ServiceRuntime(
            definition.name, self.engine, self.clock, self.store, definition.tables()
        )
        self._seen_outbox = 0

    def deliver(
        self, source: str, event_type: str, payload: dict, at: dt.datetime | None = None
    ) -> str:
        """Hand one event to the subscribed handler, as the broker would; its outcome."""
        sub = next(
            s
            for s in c.SUBSCRIPTIONS
            if s.source == source
            and s.event_type == event_type
            and s.consumer == self.definition.name
        )
        payload = {"jurisdiction_version": self.version, **payload}
        event = c.make_event(source, event_type, at or self.clock.now(), payload)
        message = json.loads(json.dumps(event.to_message()))
        return self.runtime.consume(sub.method, message, self.definition.handlers[sub.method])

    def outbox(self) -> list[tuple[str, dict]]:
        """(routing key, body) of every row written since the last call."""
        table = self.runtime.tables["outbox"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.routing_key, table.c.body)
                .order_by(table.c.id)
                .offset(self._seen_outbox)
            ).all()
        self._seen_outbox += len(rows)
        return [(r.routing_key, json.loads(r.body)) for r in rows]

    def emitted(self) -> list[tuple[str, dict]]:
        """(event type, payload) of every event emitted since the last call."""
        return [(key, body["payload"]) for key, body in self.outbox() if "payload" in body]

    def rows(self, table: sa.Table) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(table)).mappings()]

    def close(self) -> None:
        self.engine.dispose()


def new_case_id() -> str:
    return f"T-{uuid.uuid4().hex[:8]}"
