"""A resident's WeChat location and text reaching two intake replicas (the real topology runs
several behind nginx) on the real PostgreSQL: the halves pair through intake's database, one
after the other or at the same instant, into exactly one report; a half older than the pairing
window pairs with nothing.

Run under `nameko test` (eventlet monkey-patched, psycopg2 green): every thread below holds its
own connection, so the two messages really are decided at the same time.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from xml.etree import ElementTree as ET

import pytest
import sqlalchemy as sa

from gridflow_app import bootstrap
from gridflow_common import contracts as c
from gridflow_common.clock import RealClock
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h
from gridflow_intake import models
from gridflow_intake import wechat_format as wf
from gridflow_intake.api import IntakeApi
from tests.conftest import lucheng_files
from tests.integration.support import together
from tests.support.channels import POINT, call

pytestmark = pytest.mark.integration
TOKEN = "wechat-replicas-token-51c0"
ROUNDS = 6


class RoutingNotAsked:
    def current_assignment(self, case_id: str):
        raise AssertionError(f"routing was asked about {case_id}")


@pytest.fixture(scope="module")
def replicas(database_url):
    """Two intake replicas: each its own engine, runtime and API, one database."""
    apis = []
    for i in range(2):
        engine = sa.create_engine(database_url, pool_size=12, max_overflow=8)
        bootstrap.upgrade_all(engine)
        store = JurisdictionStore(engine)
        if i == 0:
            store.install(lucheng_files())
        runtime = ServiceRuntime(c.INTAKE, engine, RealClock(), store, h.DEFINITION.tables())
        apis.append(IntakeApi(runtime, RoutingNotAsked()))
    yield apis
    for api in apis:
        api.runtime.engine.dispose()


@pytest.fixture(autouse=True)
def account(monkeypatch):
    monkeypatch.setenv("TEST_WECHAT_TOKEN", TOKEN)
    monkeypatch.setenv("GRIDFLOW_WECHAT_TOKEN_REF", "env:TEST_WECHAT_TOKEN")


def _send(api, openid: str, kind: str, **fields: str):
    parts = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    body = (
        f"<xml><ToUserName><![CDATA[gh_lucheng]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>"
        f"{parts}<MsgId>{uuid.uuid4().int % 10**18}</MsgId></xml>"
    ).encode()
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    query = {"signature": wf.signature(TOKEN, timestamp, nonce), "timestamp": timestamp}
    answer = call(
        api,
        "POST",
        "/wechat/callback",
        body,
        content_type="text/xml",
        query={**query, "nonce": nonce},
    )
    assert answer.status == 200, answer.encoded()
    return ET.fromstring(answer.encoded()).findtext("Content")


def _location(api, openid: str):
    return _send(
        api, openid, "location", Location_X=str(POINT["lat"]), Location_Y=str(POINT["lon"])
    )


def _text(api, openid: str):
    # Names no place of the city: only a location makes it a report.
    return _send(api, openid, "text", Content="路灯不亮，晚上很黑")


def _reports_of(api, openid: str) -> list:
    with api.runtime.engine.connect() as conn:
        rows = conn.execute(
            sa.select(models.reports.c.case_id, models.reports.c.description).where(
                models.reports.c.channel == "wechat"
            )
        ).all()
        mine = conn.execute(
            sa.select(models.reports.c.case_id).where(
                models.reports.c.reporter["wechat_openid"].as_string() == openid
            )
        ).all()
    assert all(r.description for r in rows)
    return [r.case_id for r in mine]


def _waiting(api, openid: str) -> list:
    with api.runtime.engine.connect() as conn:
        return conn.execute(
            sa.select(models.wechat_pending.c.kind).where(models.wechat_pending.c.openid == openid)
        ).all()


def _openid() -> str:
    return f"o6_{uuid.uuid4().hex[:25]}"


def test_a_location_on_one_replica_pairs_with_a_text_on_the_other(replicas):
    a, b = replicas
    openid = _openid()
    assert "位置" in _location(a, openid) and not _reports_of(a, openid)
    reply = _text(b, openid)
    [case_id] = _reports_of(a, openid)
    assert case_id in reply
    assert not _waiting(a, openid)

    other = _openid()
    assert "位置" in _text(b, other)
    assert _reports_of(a, other) == [] and [w.kind for w in _waiting(a, other)] == ["text"]
    reply = _location(a, other)
    [case_id] = _reports_of(b, other)
    assert case_id in reply and not _waiting(b, other)


def test_a_location_and_a_text_arriving_together_on_two_replicas_make_one_report(replicas):
    a, b = replicas
    openids = [_openid() for _ in range(ROUNDS)]
    for openid in openids:
        answers = together(
            2, lambda i, openid=openid: _location(a, openid) if i == 0 else _text(b, openid)
        )
        assert not [x for x in answers if isinstance(x, Exception)], answers
        reports = _reports_of(a, openid)
        # Both halves left waiting (each deciding before the other was kept) would be none.
        assert len(reports) == 1, (openid, answers)
        assert sum("案件编号" in x for x in answers) == 1
        assert not _waiting(a, openid)


def test_a_half_past_the_pairing_window_pairs_with_nothing(replicas):
    a, b = replicas
    openid = _openid()
    _location(a, openid)
    with a.runtime.engine.begin() as conn:
        conn.execute(
            sa.update(models.wechat_pending)
            .where(models.wechat_pending.c.openid == openid)
            .values(held_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    assert "位置" in _text(b, openid)
    assert _reports_of(a, openid) == []
    # The expired location is gone; the text waits in its place.
    assert [w.kind for w in _waiting(a, openid)] == ["text"]
