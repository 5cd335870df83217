"""Prometheus metrics shared by every service; each process serves them at ``/metrics``."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

MESSAGES = Counter(
    "gridflow_messages_total", "Messages handled, by outcome", ["service", "handler", "outcome"]
)
HANDLER_SECONDS = Histogram(
    "gridflow_handler_seconds", "Time spent in a message handler", ["service", "handler"]
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


def now_seconds() -> float:
    return time.perf_counter()


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
