"""A signed action link clicked many times at once (a duty person double-clicking, a mail
client and a phone opening the same message) on the real PostgreSQL, through two intake
replicas: the action is done once, every other click finds it done, and the link's key is the
one both replicas share.

Run under `nameko test` (eventlet monkey-patched, psycopg2 green): every thread below holds its
own connection, so the transactions really are open on the server at the same time.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gridflow_app import bootstrap
from gridflow_common import contracts as c
from gridflow_common import links
from gridflow_common.clock import RealClock
from gridflow_common.domain import vocabulary as v
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h
from gridflow_intake import models
from gridflow_intake.api import IntakeApi
from tests.conftest import lucheng_files
from tests.integration.support import together
from tests.support.email_harness import delivery_of, department_message

pytestmark = pytest.mark.integration
PARALLEL = 8
HOLDER = "urban_management-330302104"
PUBLIC = "http://gridflow.test"
JSON = {"Accept": "application/json"}


class RoutingNotAsked:
    """Intake's view already shows the holder, so routing is never asked; a question fails the
    test rather than being answered by a stand-in."""

    def current_assignment(self, case_id: str):
        raise AssertionError(f"routing was asked about {case_id}")


@pytest.fixture(scope="module")
def replicas(database_url):
    """Two intake replicas: each its own engine, runtime and API (its own key cache), one
    database."""
    apis = []
    for i in range(2):
        engine = sa.create_engine(database_url, pool_size=PARALLEL + 2, max_overflow=PARALLEL)
        bootstrap.upgrade_all(engine)
        store = JurisdictionStore(engine)
        if i == 0:
            store.install(lucheng_files())
        runtime = ServiceRuntime(c.INTAKE, engine, RealClock(), store, h.DEFINITION.tables())
        apis.append(IntakeApi(runtime, RoutingNotAsked()))
    yield apis
    for api in apis:
        api.runtime.engine.dispose()


def _dispatched_case(runtime: ServiceRuntime) -> tuple[str, str]:
    """A streetlight out in Tengqiao, registered, and dispatched to the station there as
    routing's announcement leaves intake's view."""
    report = {
        "channel": "web",
        "description": "藤桥戍浦社区门口的路灯不亮",
        "category": "component.streetlight",
        "location": {"lat": 28.05, "lon": 120.64},
    }
    with runtime.work() as work:
        _, answer = h.register_report(work, report)
    case_id = answer["case_id"]
    assignment_id = f"{case_id}-1"
    with runtime.engine.begin() as conn:
        conn.execute(
            sa.update(models.cases)
            .where(models.cases.c.case_id == case_id)
            .values(
                status=v.DISPATCHED,
                tier=v.STREET,
                holder=HOLDER,
                lead="urban_management",
                assignment_id=assignment_id,
                assignment_seq=1,
            )
        )
    return case_id, assignment_id


def test_clicks_at_once_on_two_replicas_accept_the_case_once(replicas):
    first = replicas[0]
    case_id, assignment_id = _dispatched_case(first.runtime)
    delivery = delivery_of(
        department_message(case_id, HOLDER, delivery_id=f"d-{case_id}", assignment_id=assignment_id)
    )
    # Signed as the departments service signs: its own key cache, the same table.
    sign = links.make_signer(links.LinkSecret(first.runtime.engine, environ={}), PUBLIC)
    # The same link clicked again and again, and a second copy of the mail's link (another
    # nonce) clicked too, through both replicas.
    paths = [sign(delivery, v.ACCEPTED, 600)[len(PUBLIC) :] for _ in range(2)]

    def click(i: int):
        api = replicas[i % 2]
        return api.handle("POST", paths[(i // 2) % 2], b"", JSON)

    answers = together(PARALLEL, click)
    assert not [a for a in answers if isinstance(a, Exception)], answers
    statuses = sorted(a.status for a in answers)
    assert statuses == [202] + [409] * (PARALLEL - 1), [(a.status, a.body) for a in answers]
    # Each other click waited for the first one's transaction and found the link spent (not
    # the case's status refusing a second acceptance: the link, not the lifecycle, says once).
    refusals = [a.body["errors"] for a in answers if a.status == 409]
    assert refusals == [{"link": ["this link was already used"]}] * (PARALLEL - 1)
    with first.runtime.engine.connect() as conn:
        accepted = conn.execute(
            sa.select(sa.func.count())
            .select_from(models.timeline)
            .where(models.timeline.c.case_id == case_id, models.timeline.c.kind == v.ACCEPTED)
        ).scalar()
        status = conn.execute(
            sa.select(models.cases.c.status).where(models.cases.c.case_id == case_id)
        ).scalar()
        outbox = conn.execute(
            sa.select(models.messaging["outbox"].c.body).where(
                models.messaging["outbox"].c.routing_key == c.CASE_STATUS_REPORTED
            )
        ).scalars()
        announced = [b for b in outbox if case_id in b]
    assert (accepted, status) == (1, v.ACCEPTED)
    # Announced once to the other services, in the same transaction as the click.
    assert len(announced) == 1
