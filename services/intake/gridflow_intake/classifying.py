"""Classification at intake (分类): a report without a category is classified by the model of
``gridflow_common.domain.classification``, taught by the city's own history; what a case was
finally given teaches the model for the next reports.

Each intake process (each nameko replica, and the embedded default) keeps one model per
runtime, trained from the jurisdiction's taxonomy, its ``synonyms.csv`` and the labelled
examples in ``intake_classification_examples``. The hot path costs a dictionary lookup and the
model's arithmetic, never a training (0.6-1.5 s of pure-Python CPU: under nameko every worker
is a green thread, so a training in a request would stall every request of the replica).

Training happens in ``refresh``, called from intake's periodic tick (once a second): the first
tick warms the model; then every ``REFRESH_SECONDS`` one ``max(id)`` query tells whether any
replica has recorded a label since, and only then is the model trained again, while requests
keep classifying with the current one. The rows are read on the tick's connection; under
eventlet the training itself then runs in a child process (``gridflow_intake.training``) while
the tick's green thread waits on its pipe, so the hub keeps serving at full speed. A label
recorded by this process schedules a refresh at the next tick. Only a report that finds no
model at all for the jurisdiction in force (before the first tick, or just after a new
jurisdiction was imported) waits for one to be trained.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from gridflow_common.domain import classification
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.classification import Classification
from gridflow_common.jurisdictions import NoJurisdiction
from gridflow_common.logging import get_logger
from gridflow_common.runtime import Work
from gridflow_intake.models import classification_examples

__all__ = ["Classification", "classify_report", "learn", "refresh", "shown", "timeline_detail"]

# How often (seconds of operational time) a replica asks whether the history has grown.
REFRESH_SECONDS = 30.0
# The most recent labels a model learns from: training them takes about 0.6 s (make
# bench-classify: 1.5 s for 13,000), once per refresh that finds new labels; and the
# city's recent practice is what a new report should follow.
HISTORY_LIMIT = 5_000

T = TypeVar("T")
log = get_logger(__name__)

SOURCE_RETURNED = "returned"
SOURCE_ORDERED = "ordered"
SOURCE_VERIFIED = "verified"


@dataclass
class _Cached:
    jurisdiction: Any
    version: int  # max(id) of the labels the model learnt from
    model: classification.Model
    checked_at: float  # monotonic time the labels' max(id) was last compared
    # The latest label this process recorded, and until when the tick looks for it every
    # second (its transaction may not have committed yet at the first look; one rolled back
    # never shows up, so the look gives up after REFRESH_SECONDS).
    wanted: int = 0
    wanted_until: float = -math.inf


_models: weakref.WeakKeyDictionary[Any, _Cached] = weakref.WeakKeyDictionary()
# Runtimes whose refresh is under way (a nameko timer may fire again meanwhile).
_refreshing: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()


def classify_report(work: Work, j: Any, description: str) -> Classification:
    """The category ``description`` reads as (None: unsure, the case goes to triage), with the
    scores and reasons a clerk sees on the case."""
    return _model(work, j).classify(description)


def refresh(runtime: Any) -> bool:
    """Intake's periodic classification work (once a second, off the request path): warm the
    model when there is none, and train it again when the labels grew (by any replica's hand)
    since it was trained; whether a new model is in use."""
    now = time.monotonic()
    cached = _models.get(runtime)
    if cached is not None and not _due(cached, now):
        return False
    with _lock:
        if runtime in _refreshing:
            return False
        _refreshing.add(runtime)
    try:
        with runtime.work() as work:
            try:
                j = work.jurisdiction()
            except NoJurisdiction:
                return False  # nothing to classify against yet
            version = _latest_label(work)
            if cached is not None and cached.jurisdiction is j and cached.version == version:
                cached.checked_at = now
                if version >= cached.wanted:
                    cached.wanted_until = -math.inf
                return False
            history = _history(work, version)
        # The connection is back in the pool before the CPU-bound part starts.
        model = _train(j, history)
        with _lock:
            current = _models.get(runtime)
            fresh = _Cached(j, version, model, now)
            if current is not None and version < current.wanted:
                fresh.wanted, fresh.wanted_until = current.wanted, current.wanted_until
            _models[runtime] = fresh
        return True
    finally:
        _refreshing.discard(runtime)


def _due(cached: _Cached, now: float) -> bool:
    return now - cached.checked_at >= REFRESH_SECONDS or (
        cached.wanted > cached.version and now < cached.wanted_until
    )


def _eventlet_patched() -> bool:
    if "eventlet" not in sys.modules:
        return False
    from eventlet import patcher

    return bool(patcher.is_monkey_patched("thread"))


# While a training runs in this process beside request threads (the embedded default), the GIL
# passes between them at this interval instead of Python's 5 ms: a request takes it back after
# each database round trip, and it makes dozens of those.
TRAINING_SWITCH_INTERVAL = 0.0005


def _yielding(fn: Callable[..., T], *args: Any) -> T:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, TRAINING_SWITCH_INTERVAL))
    try:
        return fn(*args)
    finally:
        sys.setswitchinterval(previous)


def _train(j: Any, history: list[tuple[str, str]]) -> classification.Model:
    """A model for ``j`` learnt from ``history``, without stalling the requests being served:
    under eventlet (nameko) in a child process, its GIL its own, while the calling green thread
    waits on its pipe (make bench-classify-retrain: a native thread through ``eventlet.tpool``
    still took the GIL from the hub half the time); in the embedded default here (its tick
    thread, already off the request path), passing the GIL to request threads often."""
    if _eventlet_patched():
        from eventlet import tpool

        from gridflow_intake.training import train_in_a_child

        try:
            model: classification.Model = train_in_a_child(j.categories, history, j.synonyms)
            return model
        except (OSError, subprocess.SubprocessError) as exc:
            # No child to be had (a process limit, a broken install): a native thread still
            # keeps the hub serving, at half speed while it trains, rather than no refresh.
            log.warning("classification_child_failed", error=str(exc)[:300])
            return tpool.execute(  # type: ignore[no-any-return]
                _yielding, classification.train, j.categories, history, j.synonyms
            )
    return _yielding(classification.train, j.categories, history, j.synonyms)


def learn(
    work: Work, case_id: str, description: str | None, category: str | None, source: str
) -> None:
    """Record that ``case_id`` (``description``) finally is a ``category`` case, in the
    caller's transaction; every replica's model learns it at its next refresh."""
    if not category or not description:
        return
    written = work.db.execute(
        sa.insert(classification_examples).values(
            case_id=case_id,
            description=description,
            category=category,
            source=source,
            labelled_at=work.now,
        )
    )
    cached = _models.get(work.runtime)
    if cached is not None:  # the next tick looks for it (none yet: the warming reads it all)
        cached.wanted = max(cached.wanted, int(written.inserted_primary_key[0]))  # type: ignore[index]
        cached.wanted_until = time.monotonic() + REFRESH_SECONDS


def timeline_detail(result: Classification | None) -> dict:
    """What the case's ``registered`` entry records of a classification (nothing when the
    report came with its category)."""
    return {} if result is None else {"classification": result.as_dict()}


def shown(entries: Any) -> dict | None:
    """The case view's ``classification``: category, score, scores and reasons as recorded at
    registration; None when the report named its category."""
    for entry in entries:
        if entry.kind == v.REGISTERED and entry.detail and "classification" in entry.detail:
            return dict(entry.detail["classification"])
    return None


def _model(work: Work, j: Any) -> classification.Model:
    cached = _models.get(work.runtime)
    if cached is not None and cached.jurisdiction is j:
        return cached.model  # even when a refresh is due: the tick does it
    # No model for the jurisdiction in force: this report cannot be classified without one.
    version = _latest_label(work)
    history = _history(work, version)
    model = _train(j, history)
    with _lock:
        _models[work.runtime] = _Cached(j, version, model, time.monotonic())
    return model


def _latest_label(work: Work) -> int:
    return work.db.execute(sa.select(sa.func.max(classification_examples.c.id))).scalar() or 0


def _history(work: Work, up_to: int) -> list[tuple[str, str]]:
    """The latest label of each case among the most recent ``HISTORY_LIMIT`` labels."""
    rows = work.db.execute(
        sa.select(
            classification_examples.c.case_id,
            classification_examples.c.description,
            classification_examples.c.category,
        )
        .where(classification_examples.c.id <= up_to)
        .order_by(classification_examples.c.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    latest: dict[str, tuple[str, str]] = {}
    for row in rows:
        latest.setdefault(row.case_id, (row.description, row.category))
    # Oldest first, as they were labelled: the model is the same whatever the order, and a
    # reader of the rows sees them in time.
    return list(reversed(latest.values()))
