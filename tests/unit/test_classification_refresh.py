"""The classification model is trained off the request path (分类模型在请求之外训练): the first
periodic tick warms it, a report never trains while a model exists (even when new labels wait),
and the tick's refresh puts the new model in use, on the embedded default (not started: the test
drives intake's ``periodic`` itself)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import classification
from gridflow_intake import classifying
from gridflow_intake import handlers as h
from gridflow_intake.models import classification_examples

NOISE = "event.noise"
TAUGHT = ["楼下棋牌室通宵搓麻将", "隔壁棋牌室搓麻将到天亮", "棋牌室里搓麻将的动静一夜不停"]
LATER = "我家楼下的棋牌室又在搓麻将了"


@pytest.fixture
def trainings(monkeypatch) -> list[int]:
    """How many labels each training learnt from, in order (the real training still runs)."""
    seen: list[int] = []
    real = classification.train

    def counted(categories, history, synonyms, **kw):
        history = list(history)
        seen.append(len(history))
        return real(categories, history, synonyms, **kw)

    monkeypatch.setattr(classification, "train", counted)
    return seen


def _classify(runtime, text: str) -> classifying.Classification:
    with runtime.work() as work:
        return classifying.classify_report(work, work.jurisdiction(), text)


def _learn(runtime, texts: list[str], category: str) -> None:
    with runtime.work() as work:
        for n, text in enumerate(texts):
            classifying.learn(work, f"case-{n}", text, category, classifying.SOURCE_ORDERED)


def _label_from_another_replica(runtime, case_id: str, text: str, category: str) -> None:
    """A label row another intake process wrote: this process's cache hears nothing of it."""
    with runtime.work() as work:
        work.db.execute(
            sa.insert(classification_examples).values(
                case_id=case_id,
                description=text,
                category=category,
                source=classifying.SOURCE_RETURNED,
                labelled_at=work.now,
            )
        )


def test_the_first_tick_warms_the_model_and_the_first_report_does_not_train(gridflow, trainings):
    runtime = gridflow.runtimes[c.INTAKE]
    h.periodic(runtime)
    assert trainings == [0]
    assert _classify(runtime, "小区门口的垃圾堆了好几天没人清运").category is not None
    assert trainings == [0]
    # Nothing new: later ticks train nothing.
    h.periodic(runtime)
    assert trainings == [0]


def test_new_labels_are_learnt_at_the_tick_not_in_the_report(gridflow, trainings):
    runtime = gridflow.runtimes[c.INTAKE]
    h.periodic(runtime)
    assert _classify(runtime, LATER).category != NOISE
    _learn(runtime, TAUGHT, NOISE)

    # A report while the refresh is due: the current model answers, nothing is trained.
    assert _classify(runtime, LATER).category != NOISE
    assert trainings == [0]

    h.periodic(runtime)
    assert trainings == [0, len(TAUGHT)]
    after = _classify(runtime, LATER)
    assert after.category == NOISE
    assert "搓麻将" in " ".join(after.reasons[NOISE])
    assert trainings == [0, len(TAUGHT)]


def test_another_replicas_label_is_learnt_once_the_refresh_interval_passed(
    gridflow, trainings, monkeypatch
):
    runtime = gridflow.runtimes[c.INTAKE]
    h.periodic(runtime)
    for n, text in enumerate(TAUGHT):
        _label_from_another_replica(runtime, f"case-other-{n}", text, NOISE)
    # Within the interval the tick does not even ask (one max(id) query per interval).
    assert classifying.refresh(runtime) is False
    assert _classify(runtime, LATER).category != NOISE
    monkeypatch.setattr(classifying, "REFRESH_SECONDS", 0.0)
    assert classifying.refresh(runtime) is True
    assert trainings == [0, len(TAUGHT)]
    assert _classify(runtime, LATER).category == NOISE
    # Asked again with nothing new: no training.
    assert classifying.refresh(runtime) is False
    assert trainings == [0, len(TAUGHT)]


def test_without_any_model_the_report_trains_one_and_the_tick_then_keeps_it(gridflow, trainings):
    runtime = gridflow.runtimes[c.INTAKE]
    assert _classify(runtime, "路灯不亮了").category is not None
    assert trainings == [0]
    assert classifying.refresh(runtime) is False
    assert trainings == [0]


def test_a_model_trained_in_a_child_process_answers_as_one_trained_here(gridflow):
    """Under nameko intake trains in a child process (its own GIL): the model that comes back
    through the pipe is the one this process would have trained."""
    from gridflow_intake.training import train_in_a_child

    with gridflow.runtimes[c.INTAKE].work() as work:
        j = work.jurisdiction()
    history = [(text, NOISE) for text in TAUGHT]
    here = classification.train(j.categories, history, j.synonyms)
    there = train_in_a_child(j.categories, history, j.synonyms)
    for text in [LATER, "小区门口的垃圾堆了好几天没人清运", "请尽快处理一下，谢谢"]:
        assert there.classify(text) == here.classify(text)
    assert there.classify(LATER).category == NOISE
