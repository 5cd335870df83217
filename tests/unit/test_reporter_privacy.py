"""A reporter's name and phone number, and the numbers a resident writes in a description or a
note, leave intake only masked: in no event of any service, no department message and no table
outside intake's own. The case view shows them whole only when asked to.

The embedded default, its in-memory bus pumped by hand; every message a service's outbox
publishes (events and department messages alike) is recorded on its way to the bus.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from gridflow_app.embedded import EmbeddedGridflow
from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from gridflow_intake import handlers as h
from gridflow_intake import models as intake_models
from tests.unit.test_report_validation import _valid_report

NAME, PHONE = "庄思思", "13866000001"
OTHER_NAME, OTHER_PHONE = "李四海", "+86 139 0000 0002"
ID_NUMBER = "330302198512310021"
DESCRIPTION = f"我是{NAME}，一户民房内存放大量医疗废弃物，联系电话{PHONE}，身份证{ID_NUMBER}"
MASKED_DESCRIPTION = (
    "我是庄**，一户民房内存放大量医疗废弃物，联系电话138****0001，身份证330302********0021"
)
ENVIRONMENT_STATION = "environment-330302104"
CST = dt.timezone(dt.timedelta(hours=8))
# What must appear nowhere outside intake's own tables.
SECRETS = (NAME, PHONE, OTHER_NAME, "13900000002", "139 0000 0002", ID_NUMBER, "思思", "四海")
# The tables that keep what residents wrote, for those who may see it; and the jurisdiction,
# the city's own list of its staff (Lucheng's invented grid worker P00001 happens to have the
# number this test reports with).
KEPT_WHOLE = {
    intake_models.cases.name,
    intake_models.reports.name,
    intake_models.timeline.name,
    "gridflow_jurisdictions",
}


def _record_publications(g: EmbeddedGridflow) -> list[tuple[str, str, str]]:
    """Every outbox row any service publishes from now on: (exchange, routing key, body)."""
    published: list[tuple[str, str, str]] = []
    publish = g.bus.publish

    def recording(exchange: str, routing_key: str, body: str) -> None:
        published.append((exchange, routing_key, body))
        publish(exchange, routing_key, body)

    g.bus.publish = recording  # type: ignore[method-assign]
    return published


def _register(g: EmbeddedGridflow, **changes) -> tuple[int, dict]:
    with g.runtimes[c.INTAKE].work() as work:
        return h.register_report(work, _valid_report(**changes))


def _view(g: EmbeddedGridflow, case_id: str, **flags) -> dict:
    with g.runtimes[c.INTAKE].work() as work:
        return h.case_view(work, case_id, **flags)


def _rows_outside_intake(g: EmbeddedGridflow) -> dict[str, str]:
    """Every row of every table but intake's originals, as text, by table."""
    found = {}
    metadata = sa.MetaData()
    metadata.reflect(g.engine)
    with g.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in KEPT_WHOLE:
                continue
            rows = conn.execute(sa.select(table)).all()
            found[table.name] = json.dumps([list(map(str, r)) for r in rows], ensure_ascii=False)
    return found


@pytest.fixture
def reported(gridflow):
    """A case reported by 庄思思 with her number in the description, joined by a second report
    of 李四海, then escalated by its station with her name and number in the note: every hop
    that forwards a case (a new case and a reassignment) has run."""
    g = gridflow
    published = _record_publications(g)
    status, answer = _register(g, description=DESCRIPTION, reporter={"name": NAME, "phone": PHONE})
    assert status == 201, answer
    case_id = answer["case_id"]
    g.drain()
    status, joined = _register(
        g, description="又见医疗垃圾", reporter={"name": OTHER_NAME, "phone": OTHER_PHONE}
    )
    assert (status, joined["case_id"], joined["outcome"]) == (200, case_id, v.OUTCOME_JOINED)
    g.drain()
    with g.runtimes[c.INTAKE].work() as work:
        update = {"sender": ENVIRONMENT_STATION, "status": v.BEYOND_AUTHORITY}
        assert (
            h.report_status(work, case_id, {**update, "note": f"居民{NAME}电话{PHONE}"})[0] == 202
        )
    g.drain()
    return g, case_id, published


def test_department_messages_carry_the_reporter_and_the_description_masked(reported):
    g, case_id, _ = reported
    messages = [m for queued in g.bus.department_queues.values() for m in queued]
    # The first dispatch and the escalation's: routing kept the reporter for the second one.
    # (Beside them: the assisting department's copies and the station's "withdrawn" change.)
    assert [
        (m["case_id"], m["reason"]) for m in messages if (m["kind"], m["role"]) == ("case", "lead")
    ] == [
        (case_id, v.REASON_NEW),
        (case_id, v.REASON_ESCALATED),
    ]
    for message in messages:
        assert message["reporter"] == {"name": "庄**", "phone": "138****0001"}
        assert message["description"] == MASKED_DESCRIPTION
        text = json.dumps(message, ensure_ascii=False)
        assert not [s for s in SECRETS if s in text], text


def test_no_event_of_any_service_carries_a_clear_name_or_number(reported):
    g, case_id, published = reported
    events = [json.loads(body) for exchange, _, body in published if exchange != c.CASE_EXCHANGE]
    # Every service that forwards the case published (sla and notify consume, and publish no
    # case details: sla only colours, notify nothing).
    kinds = {(e["source"], e["event_type"]) for e in events}
    assert {
        (c.INTAKE, c.CASE_REGISTERED),
        (c.INTAKE, c.CASE_STATUS_REPORTED),
        (c.ROUTING, c.CASE_ROUTED),
        (c.DEPARTMENTS, c.CASE_DISPATCHED),
    } <= kinds
    for exchange, key, body in published:
        leaked = [s for s in SECRETS if s in body]
        assert not leaked, f"{exchange}/{key} carries {leaked}: {body}"
    registered = next(e for e in events if e["event_type"] == c.CASE_REGISTERED)
    assert registered["payload"]["reporter"] == {"name": "庄**", "phone": "138****0001"}
    assert registered["payload"]["description"] == MASKED_DESCRIPTION
    for event in events:
        if event["event_type"] in (c.CASE_ROUTED, c.CASE_DISPATCHED):
            assert event["payload"]["reporter"] == {"name": "庄**", "phone": "138****0001"}


def test_no_table_outside_intakes_originals_holds_a_clear_name_or_number(reported):
    g, case_id, _ = reported
    tables = _rows_outside_intake(g)
    assert "routing_assignments" in tables and "departments_dispatches" in tables
    for name, rows in tables.items():
        leaked = [s for s in SECRETS if s in rows]
        assert not leaked, f"{name} holds {leaked}"
    # Intake keeps the originals: the case's description and each report's reporter.
    with g.engine.connect() as conn:
        kept = conn.execute(
            sa.select(intake_models.reports.c.reporter).order_by(intake_models.reports.c.id)
        ).scalars()
        assert list(kept) == [
            {"name": NAME, "phone": PHONE},
            {"name": OTHER_NAME, "phone": OTHER_PHONE},
        ]


def test_the_case_view_masks_reporters_unless_told_to_reveal_them(reported):
    g, case_id, _ = reported
    masked = _view(g, case_id)
    assert [r["reporter"] for r in masked["reports"]] == [
        {"name": "庄**", "phone": "138****0001"},
        {"name": "李**", "phone": "139****0002"},
    ]
    assert masked["description"] == MASKED_DESCRIPTION
    text = json.dumps(masked, ensure_ascii=False)
    assert not [s for s in SECRETS if s in text], text
    # The note the station wrote is masked too, the reporter's name in it as well.
    [note] = [e["note"] for e in masked["timeline"] if e["kind"] == v.BEYOND_AUTHORITY]
    assert note == "居民庄**电话138****0001"

    whole = _view(g, case_id, reveal_reporters=True)
    assert [r["reporter"] for r in whole["reports"]] == [
        {"name": NAME, "phone": PHONE},
        {"name": OTHER_NAME, "phone": OTHER_PHONE},
    ]
    assert whole["description"] == DESCRIPTION
    [note] = [e["note"] for e in whole["timeline"] if e["kind"] == v.BEYOND_AUTHORITY]
    assert note == f"居民{NAME}电话{PHONE}"
    # Otherwise the two views are the same.
    for key in set(whole) - {"reports", "description", "timeline"}:
        assert whole[key] == masked[key], key
    assert [(r["channel"], r["received_at"]) for r in whole["reports"]] == [
        (r["channel"], r["received_at"]) for r in masked["reports"]
    ]


def test_the_reports_are_listed_in_order_with_city_local_instants(gridflow):
    g = gridflow
    start = g.clock.now()
    status, answer = _register(g, reporter=None, channel="hotline")
    assert status == 201
    case_id = answer["case_id"]
    g.clock.set(start + dt.timedelta(minutes=5))
    assert _register(g, reporter={"phone": PHONE})[0] == 200
    view = _view(g, case_id)
    assert [(r["channel"], r["reporter"]) for r in view["reports"]] == [
        ("hotline", None),
        ("grid_app", {"name": None, "phone": "138****0001"}),
    ]
    assert [r["received_at"] for r in view["reports"]] == [
        start.astimezone(CST).isoformat(),
        (start + dt.timedelta(minutes=5)).astimezone(CST).isoformat(),
    ]
    assert view["reports"][0]["received_at"].endswith("+08:00")
    assert c.CaseSchema().validate(view) == {}
