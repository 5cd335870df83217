"""``make bench-notify``: notifications delivered per second through the e-mail and webhook
channels (issue 10, "Measured"), each beside a baseline measured in the same run.

1. **Baselines.** Raw smtplib: the same mail (``EmailChannel.compose``) sent to the same aiosmtpd
   server from as many threads as the delivery worker uses (GRIDFLOW_NOTIFY_CONCURRENCY, 8),
   one SMTP conversation per mail (what a sender that keeps no connection does) and over one
   kept connection per thread (what the channel does). Raw HTTP: the same signed JSON
   POSTed to the same loopback receiver from as many threads, once with a new connection per
   POST (as the channel posts) and once over keep-alive clients (what HTTP can do here).
2. **Gridflow.** N messages waiting in ``notify_notifications`` on PostgreSQL, as notify's
   handlers leave them (one row per person, channel chosen, text rendered); the delivery worker
   then claims (lease, ``FOR UPDATE SKIP LOCKED``), sends through the channel plugin from its
   pool and records each outcome and delivery-log row, pass after pass with no pause between,
   until every row is ``sent``: messages/s from the first claim to the last record. Each message
   is checked to have arrived once.

Receivers run in this process (aiosmtpd's own thread and loop; a threaded ``http.server``), the
same for Gridflow and its baseline, so the figures compare what each sender costs. Works in a
database of its own (``gridflow_bench_notify``), dropped at the end. Measures, asserts nothing;
a message missing or arrived twice is printed as such.

Options: ``--quick`` (300 messages a phase instead of BENCH_NOTIFY_N, 2000).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import json
import os
import smtplib
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import sqlalchemy as sa

from bench import infra
from gridflow_common import notify_channels as nc

DB_NAME = "gridflow_bench_notify"
DATABASE_URL = f"{infra.PG_SERVER}/{DB_NAME}"
HOOK_SECRET = "bench-hook-secret"
SECRET_ENV = "BENCH_NOTIFY_HOOK_SECRET"
TEXT = "【网格化管理】红色预警：案件 GF-20261126-ABCDEFGHJK（井盖缺失）严重超期，请立即处置并反馈。"
SUBJECT = "红色预警：井盖缺失"


def concurrency() -> int:
    return int(os.environ.get("GRIDFLOW_NOTIFY_CONCURRENCY") or 8)


def message(i: int, address: str | None) -> nc.OutgoingMessage:
    return nc.OutgoingMessage(
        message_id=f"P{i:05d}|GF-BENCH-{i:06d}|warning:red",
        case_id=f"GF-BENCH-{i:06d}",
        kind="warning_red",
        subject=SUBJECT,
        text=TEXT,
        urgent=True,
        address=address,
        recipient_name="李队长",
    )


def timed(n: int, work: Callable[[int], Any], threads: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(n)))
    return n / (time.perf_counter() - started)


# -- baselines ---------------------------------------------------------------------------------


def raw_smtp(url: str, n: int) -> float:
    from gridflow_notify.channels.email import EmailChannel

    composer = EmailChannel("email", {"smtp_url": url}, nc.ChannelContext(secret=lambda _: ""))
    port = int(url.rsplit(":", 1)[1])

    def send(i: int) -> None:
        mail = composer.compose(message(i, f"raw{i}@bench.example"))
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.send_message(mail)

    return timed(n, send, concurrency())


def raw_smtp_kept(url: str, n: int) -> float:
    from gridflow_notify.channels.email import EmailChannel

    composer = EmailChannel("email", {"smtp_url": url}, nc.ChannelContext(secret=lambda _: ""))
    port = int(url.rsplit(":", 1)[1])
    local = threading.local()
    opened: list[smtplib.SMTP] = []

    def send(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = smtplib.SMTP("127.0.0.1", port, timeout=10)
            opened.append(client)
        client.send_message(composer.compose(message(i, f"kept{i}@bench.example")))

    try:
        return timed(n, send, concurrency())
    finally:
        for client in opened:
            client.quit()


def _signed(i: int) -> tuple[bytes, dict[str, str]]:
    m = message(i, None)
    body = json.dumps(
        {"message_id": m.message_id, "case_id": m.case_id, "kind": m.kind, "text": m.text},
        ensure_ascii=False,
    ).encode()
    timestamp = str(int(time.time()))
    digest = hmac.new(HOOK_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return body, {
        "Content-Type": "application/json; charset=utf-8",
        "X-Gridflow-Timestamp": timestamp,
        "X-Gridflow-Signature": "sha256=" + digest.hexdigest(),
    }


def raw_http_new_connections(url: str, n: int) -> float:
    def send(i: int) -> None:
        body, headers = _signed(i)
        httpx.post(url, content=body, headers=headers, timeout=10).raise_for_status()

    return timed(n, send, concurrency())


def raw_http_keep_alive(url: str, n: int) -> float:
    local = threading.local()

    def send(i: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=10)
        body, headers = _signed(i)
        client.post(url, content=body, headers=headers).raise_for_status()

    return timed(n, send, concurrency())


# -- Gridflow ----------------------------------------------------------------------------------


class Notify:
    """Notify's runtime on the bench database, Lucheng installed."""

    def __init__(self) -> None:
        from gridflow_app import bootstrap
        from gridflow_common.clock import make_clock
        from gridflow_common.db import make_engine
        from gridflow_common.jurisdictions import JurisdictionStore
        from gridflow_common.runtime import ServiceRuntime
        from gridflow_notify.handlers import DEFINITION
        from tests.conftest import lucheng_files

        self.engine = make_engine(DATABASE_URL, pool_size=concurrency() + 4)
        store = JurisdictionStore(self.engine)
        bootstrap.upgrade_all(self.engine)
        store.install(lucheng_files())
        self.runtime = ServiceRuntime(
            DEFINITION.name,
            self.engine,
            make_clock(self.engine, "real"),
            store,
            DEFINITION.tables(),
        )

    def waiting(self, phase: str, n: int, channel: str, address: Callable[[int], str | None]):
        """``n`` rows as notify's handlers leave them: pending, channel chosen, text rendered."""
        from gridflow_notify import delivery
        from gridflow_notify.models import notifications

        now = dt.datetime.now(dt.timezone.utc)
        rows = []
        for i in range(n):
            m = message(i, address(i))
            rows.append(
                dict(
                    message_key=f"{phase}|{m.message_id}",
                    case_id=m.case_id,
                    assignment_id=f"{m.case_id}-1",
                    person_id=f"P{i:05d}",
                    role="station_duty",
                    channel=channel,
                    address=m.address or "",
                    reason="escalate",
                    kind=m.kind,
                    subject=m.subject,
                    text=m.text,
                    context={"contacts": {"email": m.address}, "person": "李队长"},
                    channels=[channel],
                    urgent=True,
                    status=delivery.PENDING,
                    created_at=now,
                )
            )
        with self.engine.begin() as conn:
            conn.execute(sa.insert(notifications), rows)

    def deliver(self, channels: dict[str, dict]) -> tuple[float, int, dict[str, int]]:
        """The worker, pass after pass, until nothing is pending: messages/s, passes, and the
        rows by status."""
        from gridflow_notify import delivery
        from gridflow_notify.models import notifications

        worker = delivery.DeliveryWorker(
            self.runtime,
            delivery.build_channels(channels),
            delivery.Settings(concurrency=concurrency(), pass_budget_seconds=3600),
        )
        n = notifications.c
        done = passes = 0
        started = time.perf_counter()
        try:
            while True:
                tried = worker.run_pass()
                passes += 1
                done += tried
                if tried == 0:
                    break
            elapsed = time.perf_counter() - started
        finally:
            worker.close()
        with self.engine.connect() as conn:
            statuses: dict[str, int] = {
                str(status): int(count)
                for status, count in conn.execute(
                    sa.select(n.status, sa.func.count()).group_by(n.status)
                ).all()
            }
            conn.execute(sa.delete(notifications))
            conn.commit()
        return done / elapsed, passes, statuses

    def close(self) -> None:
        self.engine.dispose()


def once_each(ids: list[str], want: list[str]) -> str:
    counts = Counter(ids)
    missing = len(set(want) - set(counts))
    twice = sum(1 for c in counts.values() if c > 1)
    if not missing and not twice:
        return "each once"
    return f"{missing} MISSING, {twice} TWICE"


# -- the run -----------------------------------------------------------------------------------


def run(n: int) -> dict[str, Any]:
    from tests.support.email_harness import SmtpServer
    from tests.support.notify_receivers import HttpReceiver, Reply

    os.environ[SECRET_ENV] = HOOK_SECRET
    results: dict[str, Any] = {"n": n, "concurrency": concurrency(), "load": infra.load_average()}
    infra.log(f"fresh database {DB_NAME}")
    infra.fresh_database(DB_NAME)
    smtp = SmtpServer()
    hook = HttpReceiver(Reply(200, {"ok": True}))
    notify = None
    try:
        notify = Notify()
        infra.log(f"baseline: {n} mails by raw smtplib")
        results["raw_smtp"] = raw_smtp(smtp.url, n)
        infra.log(f"baseline: {n} mails by raw smtplib over kept connections")
        results["raw_smtp_kept"] = raw_smtp_kept(smtp.url, n)
        before = len(smtp.received)
        infra.log(f"email channel: {n} messages through the delivery worker")
        notify.waiting("email", n, "email", lambda i: f"p{i}@bench.example")
        rate, passes, statuses = notify.deliver({"email": {"smtp_url": smtp.url}})
        got = [r.message["X-Gridflow-Message"] for r in smtp.received[before:]]
        want = [f"email|{message(i, None).message_id}" for i in range(n)]
        results["email"] = {
            "rate": rate,
            "passes": passes,
            "statuses": statuses,
            "check": once_each(got, want),
        }
        # Again after: the machine is shared, and a baseline on each side shows its drift.
        infra.log(f"baseline again: {n} mails by raw smtplib over kept connections")
        results["raw_smtp_kept_after"] = raw_smtp_kept(smtp.url, n)
        url = hook.url("/hook")
        infra.log(f"baseline: {n} signed POSTs, a new connection each")
        results["raw_http_new"] = raw_http_new_connections(url, n)
        infra.log(f"baseline: {n} signed POSTs over keep-alive")
        results["raw_http_keep_alive"] = raw_http_keep_alive(url, n)
        before = len(hook.taken())
        infra.log(f"webhook channel: {n} messages through the delivery worker")
        notify.waiting("webhook", n, "webhook", lambda i: None)
        rate, passes, statuses = notify.deliver(
            {"webhook": {"url": url, "secret_ref": f"env:{SECRET_ENV}"}}
        )
        got = [p.headers["x-gridflow-message-id"] for p in hook.taken()[before:]]
        want = [f"webhook|{message(i, None).message_id}" for i in range(n)]
        results["webhook"] = {
            "rate": rate,
            "passes": passes,
            "statuses": statuses,
            "check": once_each(got, want),
        }
        infra.log(f"baseline again: {n} signed POSTs over keep-alive")
        results["raw_http_keep_alive_after"] = raw_http_keep_alive(url, n)
    finally:
        smtp.close()
        hook.close()
        if notify is not None:
            notify.close()
        _drop_database()
    return results


def table(r: dict[str, Any]) -> str:
    def row(what: str, rate: float, note: str = "") -> str:
        return f"{what:<52} {rate:>9.0f} /s  {note}"

    keep_alive = r["raw_http_keep_alive"]
    lines = [
        f"notify delivery, {r['n']} messages a phase, {r['concurrency']} senders "
        f"(load before: {', '.join(f'{x:.2f}' for x in r['load'])})",
        "",
        row("raw smtplib, a connection per mail (baseline)", r["raw_smtp"]),
        row("raw smtplib, kept connections (baseline, before)", r["raw_smtp_kept"]),
        row(
            "email channel via the delivery worker (PostgreSQL)",
            r["email"]["rate"],
            f"{r['email']['check']}; {r['email']['statuses']}",
        ),
        row("raw smtplib, kept connections (baseline, after)", r["raw_smtp_kept_after"]),
        f"{'  email / raw smtplib kept (mean of both)':<52} "
        f"{r['email']['rate'] / ((r['raw_smtp_kept'] + r['raw_smtp_kept_after']) / 2):>9.0%}",
        "",
        row("raw HTTP POST, new connection each (baseline)", r["raw_http_new"]),
        row("raw HTTP POST, keep-alive (baseline, before)", r["raw_http_keep_alive"]),
        row(
            "webhook channel via the delivery worker (PostgreSQL)",
            r["webhook"]["rate"],
            f"{r['webhook']['check']}; {r['webhook']['statuses']}",
        ),
        row("raw HTTP POST, keep-alive (baseline, after)", r["raw_http_keep_alive_after"]),
        f"{'  webhook / raw HTTP keep-alive (mean of both)':<52} "
        f"{r['webhook']['rate'] / ((keep_alive + r['raw_http_keep_alive_after']) / 2):>9.0%}",
    ]
    return "\n".join(lines)


def _drop_database() -> None:
    admin = sa.create_engine(f"{infra.PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    finally:
        admin.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.notify", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 messages a phase")
    args = parser.parse_args(argv)
    n = 300 if args.quick else int(os.environ.get("BENCH_NOTIFY_N") or 2000)
    results = run(n)
    print(table(results))
    print("BENCH_NOTIFY_JSON " + json.dumps(results, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
