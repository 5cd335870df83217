"""Pushes per second through the webhook adapter: ``python -m bench.webhook_adapter``.

The adapter pushes signed department messages to the department double of the tests
(``tests/support/department_http.py``: Python's threading HTTP server in its own process,
verifying every signature), first from one thread (one kept-alive connection: the delivery
engine pushes one unit's deliveries in order), then from BENCH_WEBHOOK_THREADS threads sharing
one adapter (several units of one department). Prints pushes/s and p50 / p99 milliseconds a
push. The double's own cost is in the numbers: a department's real system is another process
on another machine. Measures, asserts nothing.

Options (environment): BENCH_WEBHOOK_PUSHES (2000 per measurement), BENCH_WEBHOOK_THREADS (4).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

from bench.infra import percentile
from gridflow_common.adapters.contract import AdapterConfig, AdapterContext, Delivery
from gridflow_departments.adapters.webhook import WebhookAdapter
from tests.support.department_http import DepartmentDouble

PUSHES = int(os.environ.get("BENCH_WEBHOOK_PUSHES", 2000))
THREADS = int(os.environ.get("BENCH_WEBHOOK_THREADS", 4))
SECRET = "bench-webhook-secret"

MESSAGE = {
    "message_version": 2,
    "kind": "case",
    "case_id": "GF-20261126-0001",
    "assignment_id": "asg-1",
    "role": "lead",
    "unit": "fire-station-3",
    "department": "fire",
    "category": "gas_leak",
    "description": "燃气泄漏，三楼楼道有气味，住户已撤离" * 4,
    "location": {
        "point": {"lat": 28.0046, "lon": 120.6512},
        "grid": "LC-0101-03",
        "community": "五马社区",
        "street": "五马街道",
        "address": "鹿城区五马街 12 号",
    },
    "due_at": "2026-11-26T14:00:00+08:00",
    "colour": "green",
}


def delivery(n: int) -> Delivery:
    return Delivery(
        delivery_id=f"bench-{n}",
        kind="case",
        case_id="GF-20261126-0001",
        assignment_id="asg-1",
        unit="fire-station-3",
        department="fire",
        role="lead",
        message={**MESSAGE, "delivery_id": f"bench-{n}"},
    )


def push_all(adapter: WebhookAdapter, numbers: range, seconds: list[float]) -> None:
    for n in numbers:
        started = time.perf_counter()
        adapter.push(delivery(n))
        seconds.append(time.perf_counter() - started)


def report(label: str, seconds: list[float], wall: float) -> None:
    ms = sorted(s * 1000 for s in seconds)
    print(
        f"{label:<28} {len(ms) / wall:8.0f} pushes/s   "
        f"p50 {percentile(ms, 50):6.2f} ms   p99 {percentile(ms, 99):6.2f} ms"
    )


def main() -> None:
    double = DepartmentDouble(SECRET)
    adapter = WebhookAdapter(
        AdapterConfig(
            code="fire", adapter="webhook", endpoint=double.endpoint, credential_ref="env:BENCH"
        ),
        AdapterContext(
            secret=lambda ref: SECRET,
            sign_link=lambda *a: "",
            public_url="http://gridflow.test/",
            now=lambda: dt.datetime.now(dt.UTC),
        ),
    )
    try:
        push_all(adapter, range(-200, 0), [])  # warm: connection made, code paths loaded
        seconds: list[float] = []
        started = time.perf_counter()
        push_all(adapter, range(PUSHES), seconds)
        report("one thread", seconds, time.perf_counter() - started)

        seconds = []
        per = PUSHES // THREADS
        workers = [
            threading.Thread(
                target=push_all,
                args=(adapter, range(PUSHES + i * per, PUSHES + (i + 1) * per), seconds),
            )
            for i in range(THREADS)
        ]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        report(f"{THREADS} threads, one adapter", seconds, time.perf_counter() - started)
        verified = sum(1 for p in double.pushes() if p["signature_ok"])
        print(f"the double verified {verified} of {len(double.pushes())} signatures")
    finally:
        adapter.close()
        double.close()


if __name__ == "__main__":
    main()
