"""contracts.SUBSCRIPTIONS is the one table of who consumes what: the service layers and the
nameko service classes must agree with it, and the envelopes must hold to their schemas."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from marshmallow import ValidationError
from nameko.containers import ServiceContainer
from nameko.events import SERVICE_POOL, EventHandler

from gridflow_common import contracts as c

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _definition(service: str):
    return importlib.import_module(f"gridflow_{service}.handlers").DEFINITION


def _service_class(service: str):
    module = importlib.import_module(f"gridflow_{service}.service")
    cls_name = {"sla": "SlaService"}.get(service, f"{service.capitalize()}Service")
    return getattr(module, cls_name)


def _event_handlers_of(cls) -> dict[str, list[EventHandler]]:
    """Method name -> the nameko event_handler entrypoints declared on it."""
    found: dict[str, list[EventHandler]] = {}
    for name in dir(cls):
        method = getattr(cls, name, None)
        for entrypoint in getattr(method, "nameko_entrypoints", ()) or ():
            if isinstance(entrypoint, EventHandler):
                found.setdefault(name, []).append(entrypoint)
    return found


# ----------------------------------------------------------------------------- the table itself


def test_subscriptions_name_only_known_services_and_event_types():
    event_types = {event_type for event_type, _ in c.PAYLOAD_SCHEMAS}
    for sub in c.SUBSCRIPTIONS:
        assert sub.source in c.SERVICES, sub
        assert sub.consumer in c.SERVICES, sub
        assert sub.event_type in event_types, sub
        assert sub.source != sub.consumer, sub


def test_no_subscription_is_listed_twice():
    assert len(set(c.SUBSCRIPTIONS)) == len(c.SUBSCRIPTIONS)
    assert len({s.queue for s in c.SUBSCRIPTIONS}) == len(c.SUBSCRIPTIONS)


def test_every_event_type_has_at_least_one_consumer():
    consumed = {s.event_type for s in c.SUBSCRIPTIONS}
    assert consumed == {event_type for event_type, _ in c.PAYLOAD_SCHEMAS}


# ----------------------------------------------------------------------------- service layers


@pytest.mark.parametrize("sub", c.SUBSCRIPTIONS, ids=lambda s: f"{s.consumer}.{s.method}")
def test_every_subscription_has_a_handler_of_that_name_in_its_consumer(sub):
    definition = _definition(sub.consumer)
    assert definition.name == sub.consumer
    assert callable(definition.handlers.get(sub.method)), (
        f"{sub.consumer} subscribes {sub.method} but its DEFINITION has no such handler"
    )


@pytest.mark.parametrize("service", c.SERVICES)
def test_every_handler_of_a_service_is_subscribed(service):
    subscribed = {s.method for s in c.subscriptions_of(service)}
    assert set(_definition(service).handlers) == subscribed


# ----------------------------------------------------------------------------- nameko classes


@pytest.mark.parametrize("service", c.SERVICES)
def test_nameko_service_has_one_event_handler_per_subscription(service):
    cls = _service_class(service)
    assert cls.name == service
    handlers = _event_handlers_of(cls)
    expected = {(s.method, s.source, s.event_type) for s in c.subscriptions_of(service)}
    declared = {
        (method, ep.source_service, ep.event_type) for method, eps in handlers.items() for ep in eps
    }
    assert declared == expected
    for method, eps in handlers.items():
        assert len(eps) == 1, f"{service}.{method} has {len(eps)} event handlers"
        [ep] = eps
        assert ep.handler_type == SERVICE_POOL
        # The consumer records failures itself; a message must go back if even that fails.
        assert ep.requeue_on_error is True


@pytest.mark.parametrize("service", c.SERVICES)
def test_nameko_queue_names_match_the_contract(service):
    cls = _service_class(service)
    container = ServiceContainer(cls, {"AMQP_URI": "memory://"})
    queues = {}
    for entrypoint in container.entrypoints:
        if isinstance(entrypoint, EventHandler):
            entrypoint.setup()  # nameko computes the queue name here; nothing is connected
            queues[entrypoint.method_name] = (
                entrypoint.queue.name,
                entrypoint.queue.routing_key,
                entrypoint.queue.exchange.name,
            )
    expected = {
        s.method: (s.queue, s.event_type, c.event_exchange(s.source))
        for s in c.subscriptions_of(service)
    }
    assert queues == expected
    for s in c.subscriptions_of(service):
        assert s.queue == f"evt-{s.source}-{s.event_type}--{s.consumer}.{s.method}"


# ----------------------------------------------------------------------------- envelopes


def _registered_payload(**changes) -> dict:
    payload = {
        "case_id": "GF-1",
        "category": "event.noise",
        "area_code": "330302104001001",
        "description": "噪音",
        "jurisdiction_version": 1,
    }
    payload.update(changes)
    return payload


def test_make_event_wraps_a_valid_payload_in_a_round_tripping_envelope():
    event = c.make_event(c.INTAKE, c.CASE_REGISTERED, T0, _registered_payload())
    assert (event.source, event.event_type, event.version) == (
        c.INTAKE,
        c.CASE_REGISTERED,
        c.CURRENT_VERSION,
    )
    again = c.load_event(event.to_message())
    assert again == event


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        pytest.param(c.CASE_REGISTERED, {"case_id": "GF-1"}, id="required-fields-missing"),
        pytest.param(
            c.CASE_REGISTERED, _registered_payload(jurisdiction_version="latest"), id="wrong-type"
        ),
        pytest.param(
            c.CASE_STATUS_REPORTED,
            {"case_id": "GF-1", "sender": "x", "status": "gave_up", "jurisdiction_version": 1},
            id="status-not-a-handler-status",
        ),
        pytest.param(
            c.CASE_COLOUR_CHANGED,
            {
                "case_id": "GF-1",
                "assignment_id": "GF-1-1",
                "colour": "purple",
                "jurisdiction_version": 1,
            },
            id="unknown-colour",
        ),
        pytest.param(c.CLOCK_ADVANCED, {"now": "2026-03-02T09:00:00"}, id="naive-instant"),
    ],
)
def test_make_event_refuses_a_payload_that_breaks_its_schema(event_type, payload):
    with pytest.raises(ValueError, match=event_type):
        c.make_event(c.INTAKE, event_type, T0, payload)


def test_load_event_refuses_an_unknown_event_version():
    message = c.make_event(c.INTAKE, c.CASE_REGISTERED, T0, _registered_payload()).to_message()
    message["version"] = c.CURRENT_VERSION + 1
    with pytest.raises(ValidationError) as exc:
        c.load_event(message)
    assert "event_type" in exc.value.messages
    assert f"version {c.CURRENT_VERSION + 1}" in str(exc.value.messages)


def test_load_event_refuses_an_unknown_event_type():
    message = c.make_event(c.INTAKE, c.CASE_REGISTERED, T0, _registered_payload()).to_message()
    message["event_type"] = "case_teleported"
    with pytest.raises(ValidationError):
        c.load_event(message)


def test_load_event_refuses_a_payload_that_breaks_its_schema():
    message = c.make_event(c.INTAKE, c.CASE_REGISTERED, T0, _registered_payload()).to_message()
    del message["payload"]["area_code"]
    with pytest.raises(ValidationError) as exc:
        c.load_event(message)
    assert "area_code" in exc.value.messages


def test_load_event_ignores_fields_a_newer_producer_added():
    message = c.make_event(c.INTAKE, c.CASE_REGISTERED, T0, _registered_payload()).to_message()
    message["payload"]["priority"] = "high"
    message["trace_id"] = "abc"
    event = c.load_event(message)
    assert "priority" not in event.payload
    assert event.payload["case_id"] == "GF-1"
