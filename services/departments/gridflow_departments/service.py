"""The departments service as a nameko process: thin adapters over its handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import kombu

from gridflow_common import figures, metrics
from gridflow_common.case_queues import declare_unit_queues
from gridflow_common.jurisdictions import NoJurisdiction
from gridflow_common.logging import get_logger
from gridflow_common.nameko_support import GridflowService, Runtime, subscribe
from gridflow_departments.handlers import DEFINITION
from gridflow_departments.worker import WORKER_KEY, Settings

log = get_logger(__name__)


class DepartmentsRuntime(Runtime):
    """The runtime, plus the department side of the broker at start (every AMQP unit's queue
    declared, so a department system that connects before its first case finds its queue),
    and the delivery worker let go at stop."""

    def setup(self) -> None:
        # A wrong delivery setting (GRIDFLOW_DELIVERY_*) stops the service at start, naming it,
        # rather than failing every tick.
        settings = Settings.from_environment()
        # Each push thread records its outcome on a connection of its own.
        self.extra_connections = settings.concurrency
        super().setup()

    def start(self) -> None:
        super().start()
        try:
            _, jurisdiction = self.runtime.jurisdictions.active()
            with kombu.Connection(self.amqp_uri, connect_timeout=5) as conn:
                declared = declare_unit_queues(conn.default_channel, jurisdiction)
            log.info("unit_queues_declared", units=declared)
        except NoJurisdiction:
            log.info("unit_queues_not_declared", why="no jurisdiction installed yet")
        except Exception as exc:
            # The relay still declares each unit's queues before its first message there.
            log.warning("unit_queues_not_declared", why=f"{type(exc).__name__}: {exc}")

    def queue_figures(self) -> Callable[[], Iterable[metrics.Sample]] | None:
        return lambda: figures.broker_queue_samples(self.runtime, self.amqp_uri)

    def stop(self) -> None:
        worker = self.runtime.extras.pop(WORKER_KEY, None)
        if worker is not None:
            worker.close()
        super().stop()


@subscribe
class DepartmentsService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = DepartmentsRuntime(DEFINITION)
