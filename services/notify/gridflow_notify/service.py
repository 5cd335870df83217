"""The notify service as a nameko process: thin adapters over ``gridflow_notify.handlers``."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy

from gridflow_common import contracts as c
from gridflow_common.nameko_support import AMQP_URI, GridflowService, Runtime, subscribe
from gridflow_notify import delivery, handlers
from gridflow_notify.handlers import DEFINITION

# How long a send waits for intake to give a resident's contacts.
CONTACTS_TIMEOUT_SECONDS = 5.0
# After intake failed to answer, how long (operational seconds) the process does not ask again:
# the residents' messages are retried later at once, so the delivery worker is never held for a
# timeout per message while other people's messages wait behind them.
CONTACTS_PAUSE_SECONDS = 15.0


class IntakeUnavailable(Exception):
    """Intake did not answer a moment ago: not asked again yet."""


class IntakeContacts:
    """intake's ``reporter_contacts`` RPC from the delivery worker (which runs in the tick, not
    in an entrypoint with an RpcProxy of its own): one standalone proxy for the process, one
    call at a time."""

    def __init__(self, amqp_uri: str):
        self._config = {AMQP_URI: amqp_uri}
        self._lock = threading.Lock()
        self._cluster: ClusterRpcProxy | None = None
        self._proxy: Any = None
        self._paused_until = 0.0

    def __call__(
        self, case_id: str, report_id: int | None = None, links: bool = True
    ) -> list[dict]:
        with self._lock:
            if time.monotonic() < self._paused_until:
                raise IntakeUnavailable("intake did not answer a moment ago")
            try:
                if self._proxy is None:
                    self._cluster = ClusterRpcProxy(self._config, timeout=CONTACTS_TIMEOUT_SECONDS)
                    self._proxy = self._cluster.start()
                return list(self._proxy[c.INTAKE].reporter_contacts(case_id, report_id, links))
            except Exception:
                self._paused_until = time.monotonic() + CONTACTS_PAUSE_SECONDS
                self.close()
                raise

    def close(self) -> None:
        if self._cluster is not None:
            try:
                self._cluster.stop()
            finally:
                self._cluster = self._proxy = None


class NotifyRuntime(Runtime):
    """The runtime, plus the delivery worker's way to intake, and its channels let go at
    stop."""

    def setup(self) -> None:
        # A channel wrongly configured stops the service at start, naming it.
        delivery.build_channels(delivery.channel_options())
        self.extra_connections = 1
        super().setup()
        self.runtime.extras[delivery.CONTACTS_KEY] = IntakeContacts(
            self.amqp_uri or os.environ.get(AMQP_URI, "")
        )

    def stop(self) -> None:
        worker = self.runtime.extras.pop(delivery.WORKER_KEY, None)
        if worker is not None:
            worker.close()
        contacts = self.runtime.extras.pop(delivery.CONTACTS_KEY, None)
        if contacts is not None:
            contacts.close()
        super().stop()


@subscribe
class NotifyService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = NotifyRuntime(DEFINITION)

    @rpc
    def case_notifications(self, case_id: str) -> dict:
        """The notices sent for a case, as its page shows them (contacts masked, each with its
        delivery log): intake asks, having decided the caller may read the case."""
        with self.runtime.work() as work:
            return handlers.case_notices(work, case_id)
