"""Classification at intake (分类): a report without a category is classified by the model of
``gridflow_common.domain.classification``, taught by the city's own history; what a case was
finally given teaches the model for the next reports.

Each intake process (each nameko replica, and the embedded default) keeps one model per
runtime, trained from the jurisdiction's taxonomy, its ``synonyms.csv`` and the labelled
examples in ``intake_classification_examples``. The hot path costs a dictionary lookup and the
model's arithmetic; every ``REFRESH_SECONDS`` (operational time) one ``max(id)`` query tells
whether any replica has recorded a label since, and only then is the model trained again. A
label recorded by this process makes its next classification look at once.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from gridflow_common.domain import classification
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.classification import Classification
from gridflow_common.runtime import Work
from gridflow_intake.models import classification_examples

__all__ = ["Classification", "classify_report", "learn", "shown", "timeline_detail"]

# How often (seconds of operational time) a replica asks whether the history has grown.
REFRESH_SECONDS = 30.0
# The most recent labels a model learns from: training them takes about 0.6 s (make
# bench-classify: 1.5 s for 13,000), once per refresh that finds new labels; and the
# city's recent practice is what a new report should follow.
HISTORY_LIMIT = 5_000

SOURCE_RETURNED = "returned"
SOURCE_ORDERED = "ordered"
SOURCE_VERIFIED = "verified"


@dataclass
class _Cached:
    jurisdiction: Any
    version: int
    model: classification.Model
    checked_at: float


_models: weakref.WeakKeyDictionary[Any, _Cached] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def classify_report(work: Work, j: Any, description: str) -> Classification:
    """The category ``description`` reads as (None: unsure, the case goes to triage), with the
    scores and reasons a clerk sees on the case."""
    return _model(work, j).classify(description)


def learn(
    work: Work, case_id: str, description: str | None, category: str | None, source: str
) -> None:
    """Record that ``case_id`` (``description``) finally is a ``category`` case, in the
    caller's transaction; every replica's model learns it at its next refresh."""
    if not category or not description:
        return
    work.db.execute(
        sa.insert(classification_examples),
        dict(
            case_id=case_id,
            description=description,
            category=category,
            source=source,
            labelled_at=work.now,
        ),
    )
    cached = _models.get(work.runtime)
    if cached is not None:
        cached.checked_at = -math.inf


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
    now = time.monotonic()
    cached = _models.get(work.runtime)
    if (
        cached is not None
        and cached.jurisdiction is j
        and now - cached.checked_at < REFRESH_SECONDS
    ):
        return cached.model
    version = work.db.execute(sa.select(sa.func.max(classification_examples.c.id))).scalar() or 0
    if cached is not None and cached.jurisdiction is j and cached.version == version:
        cached.checked_at = now
        return cached.model
    model = classification.train(j.categories, _history(work, version), j.synonyms)
    with _lock:
        _models[work.runtime] = _Cached(j, version, model, now)
    return model


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
