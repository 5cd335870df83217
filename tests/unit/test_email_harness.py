"""The e-mail adapter's harness for the contract suite keeps the suite's protocol: what it
reports received, refused and down is what the real SMTP server behind it did. Walked here
with the adapter the way the suite drives any adapter, so a broken harness fails before the
suite blames the adapter."""

from __future__ import annotations

import pytest

from gridflow_common.adapters import PushFailed, PushRefused, registry
from tests.support.email_harness import (
    EmailHarness,
    contract_harness,
    delivery_of,
    department_message,
)


@pytest.fixture
def harness():
    h = contract_harness()
    yield h
    h.close()


def _adapter(harness: EmailHarness):
    config = harness.config()
    assert registry.config_problems(config) == []
    return registry.load(config.adapter)(config, harness.context())


def test_the_harness_reports_each_push_and_its_copies_with_one_key(harness):
    adapter = _adapter(harness)
    first = delivery_of(department_message(delivery_id="d-1"))
    adapter.push(first)
    adapter.push(first)
    adapter.push(delivery_of(department_message(delivery_id="d-2")))
    received = harness.received()
    assert [r["delivery_id"] for r in received] == ["d-1", "d-1", "d-2"]
    keys = [r["idempotency_key"] for r in received]
    assert keys[0] == keys[1] != keys[2]
    assert received[0]["message"]["case_id"] == first.case_id
    assert "请签收" in received[0]["message"]["subject"]


def test_the_harness_refuses_once_and_goes_down_and_back(harness):
    adapter = _adapter(harness)
    delivery = delivery_of(department_message())
    harness.refuse_next()
    with pytest.raises(PushRefused):
        adapter.push(delivery)
    adapter.push(delivery)
    harness.go_down()
    assert not adapter.health().ok
    with pytest.raises(PushFailed):
        adapter.push(delivery)
    harness.come_back()
    assert adapter.health().ok
    adapter.push(delivery)
    assert len(harness.received()) == 2


def test_the_harness_status_body_is_read_back_in_the_units_words(harness):
    adapter = _adapter(harness)
    delivery = delivery_of(department_message())
    report = adapter.take_status(harness.status_body(delivery, "办结", "路灯已修复"))
    assert (report.case_id, report.unit, report.word, report.note) == (
        delivery.case_id,
        delivery.unit,
        "办结",
        "路灯已修复",
    )
    assert adapter.poll_status([]) == []
