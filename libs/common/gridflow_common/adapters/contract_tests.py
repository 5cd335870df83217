"""The contract suite's tests (run through the ``contract_suite`` plugin, never collected alone).

Each test takes a fresh harness and a fresh adapter built from the harness's config and context,
so one test's outage or refusal cannot leak into the next. What they pin is what the departments
service relies on (``contract.py``): a push arrives, a repeat carries the same idempotency key,
status words come back unmapped, a refusal is ``PushRefused``, an outage is ``PushFailed`` within
the adapter's timeout and the next push after recovery arrives, health follows the system, and
no secret reaches an exception or a log line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from marshmallow import ValidationError

from gridflow_common import contracts
from gridflow_common.adapters import registry
from gridflow_common.adapters.contract import (
    CHANGE_COLOUR,
    KIND_CASE,
    KIND_CHANGE,
    LEAD,
    Delivery,
    DepartmentAdapter,
    Health,
    OpenDelivery,
    PushFailed,
    PushRefused,
    PushResult,
    StatusReport,
)
from gridflow_common.adapters.contract_suite import (
    DEFAULT_TIMEOUT_SECONDS,
    Harness,
    Target,
    target_of,
)

# Department words that are not Gridflow's: the adapter must pass them on as said, unmapped.
WORD_TAKEN = "已受理-派工"
WORD_WORKING = "处置中"
# What the adapter gets beyond its own timeout before the suite calls it hung (process noise).
SLACK_SECONDS = 3.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Target:
    return target_of(request.config)


@pytest.fixture
def harness(target: Target) -> Iterator[Harness]:
    made = target.harness_factory()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def adapter(target: Target, harness: Harness) -> Iterator[DepartmentAdapter]:
    made = target.adapter_class(harness.config(), harness.context())
    try:
        yield made
    finally:
        made.close()


def sample_delivery(
    harness: Harness, kind: str = KIND_CASE, role: str = LEAD, attempt: int = 1
) -> Delivery:
    """A delivery as the departments service makes one, its message a valid
    ``DepartmentMessageV2`` (checked here, so the suite never feeds an adapter nonsense)."""
    config = harness.config()
    context = harness.context()
    case_id = f"GF-{uuid.uuid4().hex[:10]}"
    delivery_id = uuid.uuid4().hex
    unit = config.code
    message: dict[str, Any] = {
        "message_version": contracts.DEPARTMENT_MESSAGE_VERSION,
        "kind": kind,
        "change": CHANGE_COLOUR if kind == KIND_CHANGE else None,
        "delivery_id": delivery_id,
        "case_id": case_id,
        "assignment_id": f"{case_id}-1",
        "role": role,
        "unit": unit,
        "department": None,
        "handler": unit,
        "lead": None,
        "assisting": [],
        "tier": "street",
        "reason": "new",
        "category": "component.manhole",
        "category_name": "井盖",
        "description": "人行道井盖缺失, 有人险些踩空 (电话 138****0000)",
        "location": {
            "point": {"lat": 27.9938, "lon": 120.6994},
            "grid": "330302104001001",
            "community": "330302104001",
            "street": "330302104",
            "address": "鹿城区五马街 12 号",
        },
        "area_code": "330302104001001",
        "due_at": "2026-03-03T09:00:00+08:00",
        "colour": "yellow" if kind == KIND_CHANGE else "green",
        "reporter": {"name": "张**", "phone": "138****0000"},
        "dispatched_at": "2026-03-02T09:00:00+08:00",
        "status_back": {
            "exchange": contracts.STATUS_EXCHANGE,
            "routing_key": unit,
            "reply_queue": contracts.reply_queue(unit),
            "http": f"{context.public_url}/api/v1/departments/{unit}/updates",
        },
    }
    try:
        contracts.DepartmentMessageV2().load(message)
    except ValidationError as exc:  # the suite's own mistake, not the adapter's
        raise AssertionError(f"the suite's sample message is invalid: {exc.messages}") from None
    return Delivery(
        delivery_id=delivery_id,
        kind=kind,
        case_id=case_id,
        assignment_id=f"{case_id}-1",
        unit=unit,
        department=None,
        role=role,
        message=message,
        attempt=attempt,
    )


def received_for(harness: Harness, delivery: Delivery) -> list[dict[str, Any]]:
    return [r for r in harness.received() if r.get("delivery_id") == delivery.delivery_id]


def names_case(message: Any, case_id: str) -> bool:
    """Whether what the system received is about ``case_id``: its ``case_id`` field, or, for a
    system with its own form (a GeoReport post, an e-mail), the id somewhere in it."""
    if isinstance(message, Mapping) and "case_id" in message:
        return message["case_id"] == case_id
    return case_id in json.dumps(message, ensure_ascii=False, default=str)


def secret_of(harness: Harness) -> str | None:
    ref = harness.config().credential_ref
    return harness.context().secret(ref) if ref else None


def assert_no_secret(harness: Harness, *texts: str) -> None:
    secret = secret_of(harness)
    if secret:
        for text in texts:
            assert secret not in text, "the adapter's secret appears in an error or a log line"


def timeout_of(harness: Harness) -> float:
    return float(getattr(harness, "timeout_seconds", DEFAULT_TIMEOUT_SECONDS))


def timed(call: Any, *args: Any) -> tuple[float, Any]:
    started = time.monotonic()
    try:
        outcome: Any = call(*args)
    except Exception as exc:  # returned, so the caller asserts on the kind
        outcome = exc
    return time.monotonic() - started, outcome


# --------------------------------------------------------------------------- the class


def test_class_keeps_the_contract(target: Target, harness: Harness) -> None:
    cls = target.adapter_class
    assert registry.check_class(target.spec, cls) is cls
    assert isinstance(getattr(cls, "name", None), str) and _NAME.match(cls.name), (
        f"{cls.__qualname__}.name must be the adapter's lower-case name, "
        f"got {cls.__dict__.get('name')!r}"
    )
    installed = registry.installed()
    if cls.name in installed:
        assert installed[cls.name] == f"{cls.__module__}:{cls.__qualname__}", (
            f"entry point {cls.name!r} points at {installed[cls.name]}, not at this class"
        )
    config = harness.config()
    if cls.needs_endpoint:
        assert config.endpoint, "the adapter needs an endpoint; the harness's config has none"
    try:
        cls.config_schema().load(dict(config.options))
    except ValidationError as exc:
        pytest.fail(f"the harness's options fail {cls.__qualname__}.config_schema: {exc.messages}")


def test_config_schema_refuses_an_option_it_does_not_know(target: Target) -> None:
    # A misspelt option must be an import error in the city's data, not silently ignored.
    with pytest.raises(ValidationError):
        target.adapter_class.config_schema().load({"no_such_option_xyz": 1})


# --------------------------------------------------------------------------- pushes


def test_push_delivers_the_case_to_the_system(adapter, harness) -> None:
    delivery = sample_delivery(harness)
    result = adapter.push(delivery)
    assert isinstance(result, PushResult)
    got = received_for(harness, delivery)
    assert len(got) == 1, f"expected one push of {delivery.delivery_id}, the system got {got}"
    assert names_case(got[0]["message"], delivery.case_id), got[0]
    assert got[0]["idempotency_key"], "the push carries no idempotency key"


def test_push_change_delivers_the_change(adapter, harness) -> None:
    case = sample_delivery(harness)
    adapter.push(case)
    change = sample_delivery(harness, kind=KIND_CHANGE)
    result = adapter.push_change(change)
    assert isinstance(result, PushResult)
    got = received_for(harness, change)
    if not got:
        # A system with no way to take a change (GeoReport v2 has none) is told nothing; the
        # adapter must then say so, for the delivery's record.
        assert result.detail, "push_change sent nothing and did not say why"
        return
    assert len(got) == 1, got
    assert names_case(got[0]["message"], change.case_id), got[0]
    if isinstance(got[0]["message"], Mapping) and "change" in got[0]["message"]:
        assert got[0]["message"]["change"] == CHANGE_COLOUR


def test_pushes_arrive_in_the_order_they_were_made(adapter, harness) -> None:
    deliveries = [sample_delivery(harness) for _ in range(3)]
    for delivery in deliveries:
        adapter.push(delivery)
    wanted = {d.delivery_id for d in deliveries}
    order = [r["delivery_id"] for r in harness.received() if r.get("delivery_id") in wanted]
    assert order == [d.delivery_id for d in deliveries]


def test_a_repeated_push_carries_the_same_idempotency_key(adapter, harness) -> None:
    delivery = sample_delivery(harness)
    adapter.push(delivery)
    again = Delivery(**{**delivery.__dict__, "attempt": 2})
    adapter.push(again)
    got = received_for(harness, delivery)
    assert len(got) == 2, f"both pushes must reach the system (it drops the copy): {got}"
    keys = {r["idempotency_key"] for r in got}
    assert len(keys) == 1 and None not in keys and "" not in keys, keys
    other = sample_delivery(harness)
    adapter.push(other)
    [other_got] = received_for(harness, other)
    assert other_got["idempotency_key"] not in keys, "two deliveries share an idempotency key"


# --------------------------------------------------------------------------- status back


def test_take_status_reads_the_departments_own_word(target: Target, adapter, harness) -> None:
    delivery = sample_delivery(harness)
    adapter.push(delivery)
    try:
        body = harness.status_body(delivery, WORD_TAKEN, "已派张师傅")
    except NotImplementedError:
        pytest.skip("the harness says this system sends no status bodies")
    report = adapter.take_status(body)
    assert isinstance(report, StatusReport)
    assert report.case_id == delivery.case_id
    # Unmapped: Gridflow maps words with the city's table, never the adapter.
    assert report.word == WORD_TAKEN
    assert report.note == "已派张师傅"


def test_take_status_refuses_a_malformed_body_with_a_value_error(adapter, harness) -> None:
    for body in ({}, {"case_id": 17, "status": ["x"]}):
        with pytest.raises(ValueError) as caught:
            adapter.take_status(body)
        assert str(caught.value), "the error must name the field and the problem"


def test_polling_reports_a_change_once(target: Target, adapter, harness) -> None:
    delivery = sample_delivery(harness)
    result = adapter.push(delivery)
    if not target.adapter_class.polls:
        still_open = OpenDelivery(
            delivery.delivery_id, delivery.case_id, delivery.assignment_id, delivery.unit, None
        )
        assert adapter.poll_status([still_open]) == [], "an adapter that does not poll returns []"
        return

    def opened(last_word: str | None) -> OpenDelivery:
        return OpenDelivery(
            delivery_id=delivery.delivery_id,
            case_id=delivery.case_id,
            assignment_id=delivery.assignment_id,
            unit=delivery.unit,
            external_ref=result.external_ref,
            last_word=last_word,
        )

    harness.set_status(delivery, result.external_ref, WORD_TAKEN, None)
    [report] = adapter.poll_status([opened(None)])
    assert (report.case_id, report.word) == (delivery.case_id, WORD_TAKEN)
    assert adapter.poll_status([opened(WORD_TAKEN)]) == [], "an unchanged status reported again"
    harness.set_status(delivery, result.external_ref, WORD_WORKING, "材料已到")
    [report] = adapter.poll_status([opened(WORD_TAKEN)])
    assert (report.case_id, report.word, report.note) == (
        delivery.case_id,
        WORD_WORKING,
        "材料已到",
    )


# --------------------------------------------------------------------------- refusal and outage


def test_a_refusal_is_push_refused(adapter, harness, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    delivery = sample_delivery(harness)
    try:
        harness.refuse_next()
    except NotImplementedError as exc:
        # A system that never refuses a message for good (a broker) has nothing to check here.
        pytest.skip(f"the harness says this system cannot refuse: {exc}")
    with pytest.raises(PushRefused) as caught:
        adapter.push(delivery)
    assert caught.value.reason, "a refusal says why"
    assert_no_secret(harness, str(caught.value), caplog.text)


def test_an_outage_is_push_failed_within_the_timeout_then_delivery_resumes(
    adapter, harness, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    harness.go_down()
    delivery = sample_delivery(harness)
    took, outcome = timed(adapter.push, delivery)
    assert isinstance(outcome, PushFailed), f"a push to a system that is down gave {outcome!r}"
    assert took <= timeout_of(harness) + SLACK_SECONDS, f"the failed push took {took:.1f} s"
    assert outcome.reason
    assert outcome.retry_after is None or outcome.retry_after >= 0
    assert_no_secret(harness, str(outcome), caplog.text)

    harness.come_back()
    retry = Delivery(**{**delivery.__dict__, "attempt": 2})
    adapter.push(retry)
    got = received_for(harness, delivery)
    assert len(got) == 1 and names_case(got[0]["message"], delivery.case_id), got


def test_health_follows_the_system(adapter, harness) -> None:
    up = adapter.health()
    assert isinstance(up, Health) and up.ok, f"healthy system reported down: {up}"
    harness.go_down()
    took, down = timed(adapter.health)
    assert isinstance(down, Health), f"health() raised {down!r}: it must answer, not raise"
    assert not down.ok and down.detail, f"a system that is down reported {down}"
    assert took <= timeout_of(harness) + SLACK_SECONDS
    assert_no_secret(harness, down.detail)
    harness.come_back()
    assert adapter.health().ok


def test_context_now_is_aware_operational_time(harness) -> None:
    # Adapters compute timeouts and signatures from it: a naive or city-simulated clock breaks both.
    now = harness.context().now()
    assert now.tzinfo is not None
    assert abs((now - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 60
