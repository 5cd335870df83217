"""Prometheus metrics shared by every service; each process serves them at ``/metrics``.

Two kinds. Per-process figures (counters and histograms updated where the work happens: messages
handled, handler latency, dead-lettered messages, published outbox rows, HTTP requests): each
replica counts its own, and a dashboard sums them over replicas. Global figures (the open cases
by colour and tier, the open clocks, a service's outbox backlog and waiting dead letters, the
depth of the units' queues): read from the database or the broker at scrape time by
``GLOBAL_FIGURES``, at most once per source's cache interval, and exported only by the service's
designated replica (``gridflow_common.designated``), so a sum over replicas counts each once.
docs/operators.md lists every metric.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gridflow_common.logging import get_logger

log = get_logger(__name__)

# A handler takes milliseconds (one transaction); a slow one waits on locks or a busy database.
HANDLER_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

MESSAGES = Counter(
    "gridflow_messages_total",
    "Messages handled by a service's handler (one hop of the pipeline), by event type and "
    "outcome (ok, duplicate, failed)",
    ["service", "handler", "event_type", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "gridflow_handler_seconds",
    "Time a message handler took, its transaction included (handled messages only)",
    ["service", "handler", "event_type"],
    buckets=HANDLER_BUCKETS,
)
DEAD_LETTERS = Counter(
    "gridflow_dead_letters_total",
    "Messages given up on after their retries",
    ["service", "handler"],
)
PUBLISHED = Counter("gridflow_published_total", "Outbox rows published and confirmed", ["service"])
HTTP_REQUESTS = Counter(
    "gridflow_http_requests_total", "HTTP requests by route and status", ["route", "status"]
)
CASES_REGISTERED = Counter("gridflow_cases_registered_total", "Cases registered", ["channel"])
OPEN_CLOCKS = Gauge("gridflow_sla_open_clocks", "Running SLA clocks by colour", ["colour"])
RATE_LIMITED = Counter(
    "gridflow_rate_limited_total",
    "Rate-limit checks refused, by the kind of bucket (addr, key, user, signin)",
    ["bucket_kind"],
)
RATE_LIMIT_BACKEND_ERRORS = Counter(
    "gridflow_rate_limit_backend_errors_total",
    "Calls to the shared rate-limit store (Redis) that failed; limits came from memory meanwhile",
)
DELIVERY_PUSHES = Counter(
    "gridflow_delivery_pushes_total",
    "Pushes to department systems by the delivery worker, by adapter and outcome "
    "(delivered, failed, refused, undeliverable)",
    ["adapter", "outcome"],
)
DELIVERY_PUSH_SECONDS = Histogram(
    "gridflow_delivery_push_seconds", "Time one push to a department system took", ["adapter"]
)
DELIVERIES_PENDING = Gauge(
    "gridflow_deliveries_pending",
    "Deliveries waiting for the delivery worker (this process's view)",
)


COLLECT_ERRORS = Counter(
    "gridflow_metrics_collect_errors_total",
    "Global figures that could not be read at a scrape (database or broker out of reach, too "
    "slow), by source; the figure is then left out until the next try",
    ["source"],
)
DESIGNATED = (
    "gridflow_metrics_designated",
    "1 when this replica is the one that exports its service's global figures, else 0",
)

# The global figures: name -> (help, label names). Every process declares each (HELP and TYPE,
# no sample until a source gives one), so dashboards and tests find the names everywhere.
GLOBAL_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "gridflow_cases_open": (
        "Open cases (registered, dispatched, accepted, in progress, resolved) by the colour of "
        "their running clock (none: no clock runs) and tier; one figure for the whole city",
        ("colour", "tier"),
    ),
    "gridflow_outbox_backlog": (
        "Outbox rows committed and not yet published (confirmed by the broker), by service",
        ("service",),
    ),
    "gridflow_dead_letters_waiting": (
        "Failed messages kept in a service's dead-letter store, by state (retrying: backoff "
        "running; dead: waits for an operator)",
        ("service", "state"),
    ),
    "gridflow_queue_messages": (
        "Messages ready in a case queue of the departments' side (kind unit: "
        "gridflow.unit.<code>; kind department: gridflow.department.<code>)",
        ("kind", "code"),
    ),
    "gridflow_queue_consumers": (
        "Consumers attached to a case queue (0: the unit's or department's system is not reading)",
        ("kind", "code"),
    ),
}

Sample = tuple[str, tuple[str, ...], float]


@dataclass
class Source:
    """One reading of global figures: ``read`` returns (gauge name, label values, value)
    samples, at most once per ``ttl`` seconds (a failure too waits out the interval), and only
    while ``designated`` says this replica exports them."""

    name: str
    read: Callable[[], Iterable[Sample]]
    ttl: float = 15.0
    designated: Callable[[], bool] = lambda: True
    service: str | None = None
    _at: float = field(default=-1e18, repr=False)
    _samples: list[Sample] = field(default_factory=list, repr=False)
    # Whether this replica exported at the last reading (None: not asked yet).
    designated_now: bool | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def samples(self) -> list[Sample]:
        with self._lock:
            now = time.monotonic()
            if now - self._at < self.ttl:
                return self._samples
            self._at = now
            try:
                designated = bool(self.designated())
            except Exception as exc:
                designated = False
                COLLECT_ERRORS.labels(self.name).inc()
                log.warning("metrics_designation_failed", source=self.name, error=repr(exc))
            self.designated_now = designated
            if not designated:
                self._samples = []
                return self._samples
            try:
                self._samples = list(self.read())
            except Exception as exc:
                self._samples = []
                COLLECT_ERRORS.labels(self.name).inc()
                log.warning("metrics_source_failed", source=self.name, error=repr(exc))
            return self._samples

    def expire(self) -> None:
        with self._lock:
            self._at = -1e18


class GlobalFigures(Collector):
    """The process's one collector of global figures; sources come and go with the services
    (the embedded default has all five in one process, a nameko process one)."""

    def __init__(self) -> None:
        self._sources: dict[str, Source] = {}
        self._mutex = threading.Lock()

    def add(self, source: Source) -> Source:
        with self._mutex:
            self._sources[source.name] = source
        return source

    def remove(self, source: Source) -> None:
        """Take ``source`` away, unless another has taken its name since."""
        with self._mutex:
            if self._sources.get(source.name) is source:
                del self._sources[source.name]

    def expire(self) -> None:
        """Read every source afresh at the next scrape (tests, and after a reset)."""
        with self._mutex:
            sources = list(self._sources.values())
        for source in sources:
            source.expire()

    def describe(self) -> Iterator[Metric]:
        for name, (doc, labels) in GLOBAL_GAUGES.items():
            yield GaugeMetricFamily(name, doc, labels=labels)
        yield GaugeMetricFamily(*DESIGNATED, labels=["service"])

    def collect(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(name, doc, labels=labels)
            for name, (doc, labels) in GLOBAL_GAUGES.items()
        }
        with self._mutex:
            sources = list(self._sources.values())
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for source in sources:
            for name, labels, value in source.samples():
                if (name, labels) in seen or name not in families:
                    continue
                seen.add((name, labels))
                families[name].add_metric(list(labels), value)
        yield from families.values()
        designated = GaugeMetricFamily(*DESIGNATED, labels=["service"])
        services: set[str] = set()
        for source in sources:
            service, now = source.service, source.designated_now
            if service is not None and now is not None and service not in services:
                services.add(service)
                designated.add_metric([service], 1.0 if now else 0.0)
        yield designated


GLOBAL_FIGURES = GlobalFigures()
REGISTRY.register(GLOBAL_FIGURES)


def now_seconds() -> float:
    return time.perf_counter()


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
