"""The AMQP adapter used on its own (the contract suite, tools): it declares the unit's queues
and publishes to the topic exchange of cases on the real broker, with the delivery id as the
message id, and says when the broker cannot be reached."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from gridflow_common import contracts as c
from gridflow_common.adapters import AdapterConfig, AdapterContext, Delivery, PushFailed
from gridflow_departments.adapters.amqp import AmqpAdapter
from tests.integration.support import take

pytestmark = pytest.mark.integration


def _context() -> AdapterContext:
    def no_links(*_):
        raise AssertionError("amqp signs no links")

    return AdapterContext(
        secret=lambda ref: "",
        sign_link=no_links,
        public_url="http://127.0.0.1",
        now=lambda: dt.datetime.now(dt.timezone.utc),
    )


def test_a_push_reaches_the_units_queue_and_its_departments(amqp_uri, broker):
    unit = f"market-it{uuid.uuid4().hex[:6]}"
    adapter = AmqpAdapter(AdapterConfig(code=unit, adapter="amqp", endpoint=amqp_uri), _context())
    delivery = Delivery(
        delivery_id=f"X-1/{unit}/lead",
        kind="case",
        case_id="X",
        assignment_id="X-1",
        unit=unit,
        department="market",
        role="lead",
        message={"delivery_id": f"X-1/{unit}/lead", "case_id": "X"},
    )
    try:
        adapter.push(delivery)
        adapter.push(delivery)  # a duplicate carries the same id
        assert adapter.health().ok
    finally:
        adapter.close()
    assert [m["delivery_id"] for m in take(broker, c.unit_queue(unit), want=3, timeout=2)] == [
        delivery.delivery_id
    ] * 2
    mine = [
        m
        for m in take(broker, c.department_queue("market"), want=50, timeout=2)
        if m["delivery_id"] == delivery.delivery_id
    ]
    assert len(mine) == 2


def test_an_unreachable_broker_is_a_push_failed_and_unhealthy():
    adapter = AmqpAdapter(
        AdapterConfig(code="x", adapter="amqp", endpoint="amqp://guest:secret@127.0.0.1:1//"),
        _context(),
    )
    delivery = Delivery("d", "case", "X", "X-1", "x", None, "lead", {"case_id": "X"})
    with pytest.raises(PushFailed) as failed:
        adapter.push(delivery)
    assert "secret" not in str(failed.value)
    assert not adapter.health().ok
    adapter.close()
