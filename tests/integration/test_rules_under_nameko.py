"""The city's rules under nameko, on the real RabbitMQ and PostgreSQL: a jurisdiction installed
with a rules.yaml while routing runs decides the next case by its rule (no restart), and the
assignment row and the case_routed event name the rule and the rule version.

Run under `nameko test` (eventlet monkey-patched).
"""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa
from nameko.testing.services import entrypoint_waiter

from gridflow_app.folders import jurisdiction_files
from gridflow_common import contracts as c
from gridflow_common.jurisdictions import JurisdictionStore
from tests.integration.support import observe, publish, registered_payload, take

pytestmark = pytest.mark.integration

# Only Open311 reports of streetlights: no other test's case is touched by it.
RULES = """\
rules:
  - id: OPEN311-LIGHTS
    name: 开放接口路灯报修交五马市场监管所核实
    when: {category: component.streetlight, channel: open311}
    then: {route_to_unit: market-330302001, time_limit: 6 hours}
"""


def test_an_installed_rule_routes_the_next_case_and_is_recorded(
    container_factory, config, broker, engine
):
    from gridflow_routing.service import RoutingService

    routed = observe(broker, c.ROUTING, c.CASE_ROUTED)
    container = container_factory(RoutingService, config)
    container.start()
    version = JurisdictionStore(engine).install({**jurisdiction_files(), "rules.yaml": RULES})
    case_id = f"IT-{uuid.uuid4().hex[:8]}"
    payload = {**registered_payload(engine, case_id), "channel": "open311"}
    assert payload["jurisdiction_version"] == version

    # Routing may first work off cases other tests left in its queue: wait for this case's.
    def ours(worker_ctx, result, exc_info) -> bool:
        return any(
            isinstance(arg, dict) and arg.get("payload", {}).get("case_id") == case_id
            for arg in worker_ctx.args
        )

    with entrypoint_waiter(container, "on_case_registered", callback=ours, timeout=20):
        publish(broker, c.INTAKE, c.CASE_REGISTERED, payload)

    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT holder, rule_id, jurisdiction_version, time_limit, channel "
                "FROM routing_assignments WHERE case_id = :c"
            ),
            {"c": case_id},
        ).one()
    limit = {"amount": 6, "unit": "hours", "rule_id": "OPEN311-LIGHTS"}
    assert tuple(row) == ("market-330302001", "OPEN311-LIGHTS", version, limit, "open311")
    # Routing may first work off cases other tests left in its queue (their decisions come
    # first): read until this case's decision, within a deadline.
    ours: list[dict] = []
    deadline = time.monotonic() + 30
    while not ours and time.monotonic() < deadline:
        batch = take(broker, routed.name, want=100, timeout=1)
        ours = [m for m in batch if m["payload"]["case_id"] == case_id]
    assert len(ours) == 1, ours
    p = ours[0]["payload"]
    assert (p["holder"], p["rule_id"], p["rule_version"]) == (
        "market-330302001",
        "OPEN311-LIGHTS",
        version,
    )
    assert p["time_limit"] == limit
    assert p["explanation"].startswith(
        "按规则OPEN311-LIGHTS（开放接口路灯报修交五马市场监管所核实）"
    )
