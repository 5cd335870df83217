"""Report latency while the classification model is trained again, as a nameko intake replica
sees it: one eventlet hub (monkey-patched, as ``nameko run`` does), reports registered on
PostgreSQL by green threads arriving at a steady rate (open loop: a report's latency counts from
its arrival, so one stalled on a busy hub counts the stall), with 5,000 labels in the history.

Three phases, same run, same load:
  * no retraining (the baseline: what the register path costs here);
  * retraining in a request, as intake did before: history read and ``classification.train``
    run on the hub (every request of the replica waits behind it);
  * retraining at intake's periodic tick (``classifying.refresh``: rows read on the tick's
    connection), the training first in a native thread through ``eventlet.tpool`` (it still
    takes the GIL from the hub), then in a child process as intake runs it.

    make bench-classify-retrain             # about 60 s
    python -m bench.classify --during-retrain
    python -m bench.classify_retrain --quick
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime as dt  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import sqlalchemy as sa  # noqa: E402

from bench import infra  # noqa: E402
from gridflow_app import bootstrap  # noqa: E402
from gridflow_app.folders import LUCHENG  # noqa: E402
from gridflow_common import contracts as c  # noqa: E402
from gridflow_common.clock import RealClock  # noqa: E402
from gridflow_common.db import make_engine  # noqa: E402
from gridflow_common.domain import classification  # noqa: E402
from gridflow_common.jurisdictions import JurisdictionStore  # noqa: E402
from gridflow_common.runtime import ServiceRuntime  # noqa: E402
from gridflow_intake import classifying  # noqa: E402
from gridflow_intake import handlers as h  # noqa: E402
from gridflow_intake.models import classification_examples  # noqa: E402

DB_NAME = "gridflow_bench_classify_retrain"
LABELLED = infra.ROOT / "tests/fixtures/classification/labelled.csv"
HISTORY = 5_000
RATE = 20  # reports a second (the hub about half busy here at baseline)
RETRAIN_EVERY = 3.0  # seconds (intake: at most once per REFRESH_SECONDS)
# Each retraining tick: whether it made a new model, and how long it took.
TICKS: list[tuple[bool, float]] = []


def _texts() -> list[tuple[str, str]]:
    with LABELLED.open(encoding="utf-8", newline="") as f:
        return [(r["text"], r["category"]) for r in csv.DictReader(f)]


def _runtime(url: str) -> ServiceRuntime:
    engine = make_engine(url, pool_size=12)
    return ServiceRuntime(
        c.INTAKE, engine, RealClock(), JurisdictionStore(engine), h.DEFINITION.tables()
    )


def _seed(url: str, labelled: list[tuple[str, str]]) -> None:
    engine = sa.create_engine(url)
    bootstrap.upgrade_all(engine)
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(LUCHENG.glob("*.csv"))}
    JurisdictionStore(engine).install(files)
    now = dt.datetime.now(dt.timezone.utc)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(classification_examples),
            [
                dict(
                    case_id=f"seed-{n}",
                    description=text,
                    category=category,
                    source=classifying.SOURCE_VERIFIED,
                    labelled_at=now,
                )
                for n, (text, category) in zip(range(HISTORY), itertools.cycle(labelled))
            ],
        )
    engine.dispose()


def _report(runtime: ServiceRuntime, text: str, arrived: float, out: list[float]) -> None:
    report = {
        "channel": "hotline",
        "description": text,
        "location": {"grid_code": "330302104001001"},
        "external_id": f"retrain-{uuid.uuid4().hex}",
    }
    with runtime.work() as work:
        status, _ = h.register_report(work, report)
    assert status == 201, status
    out.append(time.perf_counter() - arrived)


def _retrain_in_the_request(runtime: ServiceRuntime) -> None:
    """What a report that found new labels did before: read the history, train, on the hub."""
    with runtime.work() as work:
        j = work.jurisdiction()
        history = classifying._history(work, classifying._latest_label(work))
        classification.train(j.categories, history, j.synonyms)


def _in_a_tpool_thread(j, history):
    """The other way off the hub: a native thread of this process (``eventlet.tpool``), the GIL
    passed at Python's default interval."""
    from eventlet import tpool

    return tpool.execute(classification.train, j.categories, history, j.synonyms)


def _retrain_at_the_tick(runtime: ServiceRuntime, labelled: list[tuple[str, str]], train) -> None:
    """A label recorded here (so a refresh is due), then intake's periodic tick, training with
    ``train`` (None: as intake does)."""
    text, category = labelled[0]
    with runtime.work() as work:
        classifying.learn(work, f"tick-{uuid.uuid4().hex[:12]}", text, category, "verified")
    real = classifying._train
    classifying._train = train or real
    try:
        started = time.perf_counter()
        refreshed = classifying.refresh(runtime)
        TICKS.append((refreshed, time.perf_counter() - started))
    finally:
        classifying._train = real


def _phase(runtime, texts, seconds: float, rate: float, retrain) -> tuple[dict, int]:
    latencies: list[float] = []
    pool = eventlet.GreenPool(200)
    retrains = 0
    started = time.perf_counter()
    next_retrain = started + RETRAIN_EVERY / 2
    for n, text in enumerate(itertools.cycle(texts)):
        due = started + n / rate
        if due - started >= seconds:
            break
        now = time.perf_counter()
        if retrain is not None and now >= next_retrain:
            next_retrain += RETRAIN_EVERY
            retrains += 1
            pool.spawn_n(retrain, runtime)
        if due > now:
            eventlet.sleep(due - now)  # the arrival schedule, not a wait for an outcome
        pool.spawn_n(_report, runtime, text, due, latencies)
    pool.waitall()
    return infra.latency_summary(latencies), retrains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run (about 15 s)")
    parser.add_argument("--rate", type=float, default=RATE, help="reports a second")
    args = parser.parse_args()
    seconds = 4.0 if args.quick else 12.0
    rate = args.rate
    labelled = _texts()
    texts = [t for t, _ in labelled]
    url = f"{infra.PG_SERVER}/{DB_NAME}"
    infra.fresh_database(DB_NAME)
    try:
        _seed(url, labelled)
        runtime = _runtime(url)
        started = time.perf_counter()
        h.periodic(runtime)  # the first tick warms the model
        warmed = time.perf_counter() - started
        started = time.perf_counter()
        with runtime.work() as work:
            j = work.jurisdiction()
            history = classifying._history(work, classifying._latest_label(work))
        read = time.perf_counter() - started
        started = time.perf_counter()
        classification.train(j.categories, history, j.synonyms)
        trained = time.perf_counter() - started
        print(
            f"history: {len(history)} labels read in {read * 1000:.0f} ms (on the hub); "
            f"one training {trained * 1000:.0f} ms, "
            f"the warming tick {warmed * 1000:.0f} ms; {rate:.0f} reports/s for {seconds:.0f} s "
            f"a phase, a retraining every {RETRAIN_EVERY:.0f} s"
        )
        phases = (
            ("no retraining (baseline)", None),
            ("before: retraining in a request", _retrain_in_the_request),
            (
                "at the tick, in a tpool thread",
                lambda r: _retrain_at_the_tick(r, labelled, _in_a_tpool_thread),
            ),
            (
                "after: at the tick, in a child process",
                lambda r: _retrain_at_the_tick(r, labelled, None),
            ),
        )
        print(f"{'phase':40} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} retrains")
        for name, retrain in phases:
            shown, retrains = _phase(runtime, texts, seconds, rate, retrain)
            print(
                f"{name:40} {shown['n']:>5} {shown['p50_ms']:>8} {shown['p99_ms']:>8} "
                f"{shown['max_ms']:>8} {retrains:>8}"
            )
        ticks = ", ".join(
            f"{'new' if made else 'none'} {took * 1000:.0f} ms" for made, took in TICKS
        )
        print(f"retraining ticks: {ticks}")
        runtime.engine.dispose()
    finally:
        infra.fresh_database(DB_NAME)
        admin = sa.create_engine(f"{infra.PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
