"""What a service is, independent of how it runs (nameko process or the embedded default)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from gridflow_common.runtime import Handler, ServiceRuntime


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    metadata: sa.MetaData
    # Handler name (the nameko method name, as in contracts.SUBSCRIPTIONS) -> handler.
    handlers: dict[str, Handler]
    # Time-driven work (the SLA sweep): called with the runtime and "now".
    periodic: Callable[[ServiceRuntime], int] | None = None
    own_tables: list[sa.Table] = field(default_factory=list)
    # The service's own global figures for /metrics (intake: open cases by colour and tier):
    # (gauge name, label values, value) samples read at scrape time (gridflow_common.figures).
    figures: Callable[[ServiceRuntime], Iterable[tuple[str, tuple[str, ...], float]]] | None = None

    def tables(self) -> list[sa.Table]:
        return self.own_tables or list(self.metadata.sorted_tables)
