"""The contract-suite harnesses of the HTTP adapters keep the harness protocol: each step the
suite takes, taken here once through each, so a harness that breaks fails here and not only
in the kit's suite."""

from __future__ import annotations

import time

import pytest

from gridflow_common.adapters import registry
from gridflow_common.adapters.contract import Delivery, OpenDelivery, PushFailed, PushRefused
from tests.support import harnesses

FACTORIES = {"webhook": harnesses.webhook_harness, "open311": harnesses.open311_harness}


@pytest.fixture(params=sorted(FACTORIES))
def harness(request):
    h = FACTORIES[request.param]()
    yield h
    h.close()


def a_delivery(n: int) -> Delivery:
    return Delivery(
        delivery_id=f"contract-{n}",
        kind="case",
        case_id=f"GF-C-{n}",
        assignment_id=f"asg-{n}",
        unit="contract-unit",
        department="contract-dept",
        role="lead",
        message={
            "message_version": 2,
            "kind": "case",
            "delivery_id": f"contract-{n}",
            "case_id": f"GF-C-{n}",
            "category": "road_damage",
            "description": "合同测试",
            "location": {"point": {"lat": 28.0, "lon": 120.6}, "address": "测试路 1 号"},
            "reporter": None,
        },
    )


def test_the_harness_walks_through_the_contract(harness):
    config = harness.config()
    cls = registry.check_class(config.adapter, registry.load(config.adapter))
    assert registry.config_problems(config) == []
    adapter = cls(config, harness.context())
    try:
        first = adapter.push(a_delivery(1))
        adapter.push(a_delivery(1))
        received = harness.received()
        assert [r["idempotency_key"] for r in received] == ["contract-1", "contract-1"]
        assert [r["delivery_id"] for r in received] == ["contract-1", "contract-1"]
        if "signature_ok" in received[0]:
            assert all(r["signature_ok"] for r in received)

        report = adapter.take_status(harness.status_body(a_delivery(1), "accepted", "收到"))
        assert (report.case_id, report.word, report.note) == ("GF-C-1", "accepted", "收到")

        if cls.polls:
            open_one = OpenDelivery(
                "contract-1",
                "GF-C-1",
                "asg-1",
                "contract-unit",
                first.external_ref,
                last_word="open",
            )
            harness.set_status(a_delivery(1), first.external_ref, "closed", "完成")
            [changed] = adapter.poll_status([open_one])
            assert (changed.word, changed.note) == ("closed", "完成")
            settled = OpenDelivery(**{**open_one.__dict__, "last_word": "closed"})
            assert adapter.poll_status([settled]) == []

        harness.refuse_next()
        with pytest.raises(PushRefused):
            adapter.push(a_delivery(2))

        harness.go_down()
        started = time.monotonic()
        with pytest.raises(PushFailed):
            adapter.push(a_delivery(3))
        assert time.monotonic() - started < config.options["read_timeout"] + 1
        assert not adapter.health().ok
        harness.come_back()
        adapter.push(a_delivery(3))
        assert adapter.health().ok
        assert [r["idempotency_key"] for r in harness.received()][-1] == "contract-3"
    finally:
        adapter.close()
