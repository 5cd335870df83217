"""Classification learns from the city's history on the real PostgreSQL: labels one intake
replica records teach another replica's model (two runtimes, two model caches, one database),
the case shows why it was classified, and a supplied category still wins over the text."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from gridflow_app import bootstrap
from gridflow_common import contracts as c
from gridflow_common.clock import RealClock
from gridflow_common.domain import classification
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import classifying, models
from gridflow_intake import handlers as h
from tests.conftest import lucheng_files

pytestmark = pytest.mark.integration
# By grid code, not a point: these reports must not merge into one another (合并 is by point).
PLACE = {"grid_code": "330302104001001"}
NEW_PHRASE = "我家楼下的棋牌室又在搓麻将了"
TAUGHT = ["楼下棋牌室通宵搓麻将", "隔壁棋牌室搓麻将到天亮", "棋牌室里搓麻将的动静一夜不停"]


def _replica(database_url: str) -> ServiceRuntime:
    engine = sa.create_engine(database_url, pool_size=2)
    store = JurisdictionStore(engine)
    return ServiceRuntime(c.INTAKE, engine, RealClock(), store, h.DEFINITION.tables())


@pytest.fixture(scope="module")
def replicas(database_url):
    engine = sa.create_engine(database_url)
    bootstrap.upgrade_all(engine)
    JurisdictionStore(engine).install(lucheng_files())
    engine.dispose()
    pair = (_replica(database_url), _replica(database_url))
    yield pair
    for runtime in pair:
        runtime.engine.dispose()


def _register(runtime, description: str, **extra) -> str:
    report = {
        "channel": "hotline",
        "description": description,
        "location": PLACE,
        "external_id": f"classify-{uuid.uuid4().hex}",
        **extra,
    }
    with runtime.work() as work:
        status, answer = h.register_report(work, report)
    assert status == 201
    return answer["case_id"]


def _view(runtime, case_id: str) -> dict:
    with runtime.work() as work:
        return h.case_view(work, case_id)


def test_labels_from_one_replica_teach_the_other(replicas, monkeypatch):
    a, b = replicas
    before = _view(b, _register(b, NEW_PHRASE))
    assert before["category"] != "event.noise"
    # What a department's return, an assign order or a verified close records, on replica A.
    for text in TAUGHT:
        case_id = _register(a, text)
        with a.work() as work:
            classifying.learn(work, case_id, text, "event.noise", classifying.SOURCE_ORDERED)
    with b.engine.connect() as conn:
        labels = conn.execute(
            sa.select(sa.func.count()).select_from(models.classification_examples)
        ).scalar()
    assert labels >= len(TAUGHT)
    # Replica B asks again once its refresh interval has passed (here: at once).
    monkeypatch.setattr(classifying, "REFRESH_SECONDS", 0.0)
    # Its periodic tick trains again, off the request path: under eventlet in a child process.
    assert classifying._eventlet_patched()
    assert classifying.refresh(b) is True
    after = _view(b, _register(b, NEW_PHRASE))
    assert after["category"] == "event.noise"
    shown = after["classification"]
    assert shown["category"] == "event.noise"
    assert shown["score"] >= classification.DEFAULT_MIN_SCORE
    assert "搓麻将" in " ".join(shown["reasons"]["event.noise"])
    registered = next(e for e in after["timeline"] if e["kind"] == "registered")
    assert registered["classification"] == shown and registered["classified"] is True


def test_the_latest_label_of_a_case_is_the_one_learnt(replicas, monkeypatch):
    a, _ = replicas
    monkeypatch.setattr(classifying, "REFRESH_SECONDS", 0.0)
    text = "小区里的石狮子被人推倒了压到花坛"
    case_id = _register(a, text)
    with a.work() as work:
        classifying.learn(work, case_id, text, "event.noise", classifying.SOURCE_RETURNED)
        classifying.learn(work, case_id, text, "event.junk_pile", classifying.SOURCE_ORDERED)
    with a.work() as work:
        history = classifying._history(work, 10**9)
    assert (text, "event.junk_pile") in history and (text, "event.noise") not in history


def test_a_supplied_category_wins_over_the_text(replicas):
    a, _ = replicas
    case_id = _register(a, "路灯下面有人摆摊卖水果，路灯也不亮", category="event.noise")
    view = _view(a, case_id)
    assert view["category"] == "event.noise"
    assert view["classification"] is None


def test_an_unsure_text_is_left_for_triage(replicas):
    a, _ = replicas
    view = _view(a, _register(a, "请尽快处理一下，谢谢"))
    assert view["category"] is None
    registered = next(e for e in view["timeline"] if e["kind"] == "registered")
    assert registered["classified"] is False
    assert view["classification"]["category"] is None
