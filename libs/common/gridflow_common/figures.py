"""The global figures of a service, read at scrape time (``metrics.GLOBAL_FIGURES``): its
outbox backlog and waiting dead letters, the service's own figures (``ServiceDefinition.figures``:
intake's open cases by colour and tier), and the depth of the units' case queues (departments,
from the broker; the embedded default, from its in-memory bus).

Each is one cheap query or, for the queues, one passive ``queue.declare`` per queue over one
AMQP connection, within a time budget; each cached for ``metrics.Source.ttl`` seconds, a failure
counted in ``gridflow_metrics_collect_errors_total`` rather than raised. Nothing here runs on the
hot path: only a scrape reads them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import TYPE_CHECKING, Any

import kombu
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common import metrics
from gridflow_common.case_queues import amqp_units
from gridflow_common.jurisdictions import NoJurisdiction

if TYPE_CHECKING:
    from gridflow_common.runtime import ServiceRuntime

# One scrape's reading of the broker stops after this long: a broker that hangs costs the scrape
# this, once per cache interval.
QUEUE_BUDGET_SECONDS = 5.0
QUEUE_SOCKET_TIMEOUT = 2.0
DEAD_LETTER_STATES = ("retrying", "dead")


def service_samples(runtime: ServiceRuntime) -> Iterator[metrics.Sample]:
    """The service's outbox backlog and its dead letters by state: two counts on tables that
    stay small (published rows are deleted, dead letters are few)."""
    outbox, failed = runtime.tables["outbox"], runtime.tables["failed"]
    with runtime.units.lock, runtime.engine.connect() as conn:
        backlog = conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()
        states: dict[str, int] = dict(
            conn.execute(sa.select(failed.c.state, sa.func.count()).group_by(failed.c.state)).all()
        )
    yield "gridflow_outbox_backlog", (runtime.service,), float(backlog)
    for state in DEAD_LETTER_STATES:
        yield "gridflow_dead_letters_waiting", (runtime.service, state), float(states.get(state, 0))


def queues_of(runtime: ServiceRuntime) -> list[tuple[str, str, str]]:
    """(kind, code, queue name) of every case queue on Gridflow's broker: each AMQP unit's own
    and its department's (once each)."""
    try:
        _, jurisdiction = runtime.jurisdictions.active()
    except NoJurisdiction:
        return []
    queues: dict[str, tuple[str, str, str]] = {}
    for department, unit in amqp_units(jurisdiction):
        queues.setdefault(c.unit_queue(unit), ("unit", unit, c.unit_queue(unit)))
        owner = department or unit
        queues.setdefault(
            c.department_queue(owner), ("department", owner, c.department_queue(owner))
        )
    return list(queues.values())


def broker_queue_samples(
    runtime: ServiceRuntime, amqp_uri: str, budget: float = QUEUE_BUDGET_SECONDS
) -> list[metrics.Sample]:
    """Messages ready and consumers of every case queue, by a passive declare each (the broker
    answers from the queue's own state; nothing is created). A queue not declared yet is left
    out. Raises (and the source counts it) when the broker is out of reach or the budget runs
    out."""
    queues = queues_of(runtime)
    if not queues:
        return []
    deadline = time.monotonic() + budget
    samples: list[metrics.Sample] = []
    timeouts = {"read_timeout": QUEUE_SOCKET_TIMEOUT, "write_timeout": QUEUE_SOCKET_TIMEOUT}
    with kombu.Connection(
        amqp_uri, connect_timeout=QUEUE_SOCKET_TIMEOUT, transport_options=timeouts
    ) as conn:
        channel: Any = conn.channel()
        for kind, code, name in queues:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {len(queues)} queues took over {budget} s")
            try:
                _, messages, consumers = channel.queue_declare(name, passive=True)
            except conn.channel_errors:
                # Not declared yet (404); the broker closed the channel with it.
                channel = conn.channel()
                continue
            samples.append(("gridflow_queue_messages", (kind, code), float(messages)))
            samples.append(("gridflow_queue_consumers", (kind, code), float(consumers)))
    return samples


def add_sources(
    runtime: ServiceRuntime,
    designated: Callable[[], bool],
    figures: Callable[[ServiceRuntime], Iterable[metrics.Sample]] | None = None,
    queues: Callable[[], Iterable[metrics.Sample]] | None = None,
    tag: str = "",
) -> list[metrics.Source]:
    """Register the service's global figures with ``metrics.GLOBAL_FIGURES`` (replacing those of
    the same service and ``tag``); returns the sources, for ``remove_sources`` when the service
    stops."""
    service = runtime.service
    sources = []

    def read() -> list[metrics.Sample]:
        samples = list(service_samples(runtime))
        if figures is not None:
            samples.extend(figures(runtime))
        return samples

    sources.append(
        metrics.GLOBAL_FIGURES.add(
            metrics.Source(f"{service}:database{tag}", read, designated=designated, service=service)
        )
    )
    if queues is not None:
        sources.append(
            metrics.GLOBAL_FIGURES.add(
                metrics.Source(f"{service}:queues{tag}", queues, designated=designated)
            )
        )
    return sources


def remove_sources(sources: Iterable[metrics.Source]) -> None:
    for source in sources:
        metrics.GLOBAL_FIGURES.remove(source)


def bus_queue_samples(
    runtime: ServiceRuntime,
    unit_queues: Mapping[str, Sized],
    department_queues: Mapping[str, Sized],
) -> list[metrics.Sample]:
    """The embedded default's case queues: what its in-memory bus keeps per unit and per
    department (no consumers there: a department reads them through the API)."""
    samples: list[metrics.Sample] = []
    known = {(kind, code) for kind, code, _ in queues_of(runtime)}
    known |= {("unit", code) for code in list(unit_queues)}
    known |= {("department", code) for code in list(department_queues)}
    for kind, code in sorted(known):
        held = (unit_queues if kind == "unit" else department_queues).get(code)
        samples.append(("gridflow_queue_messages", (kind, code), float(len(held or ()))))
    return samples
