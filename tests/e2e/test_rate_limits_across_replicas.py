"""Rate limits shared by intake replicas through the real Redis: a key's budget is one budget
whichever replica a request reaches, and a Redis that goes away does not stop intake."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from gridflow_app.embedded import EmbeddedGridflow
from gridflow_intake.access import Access, Limits
from gridflow_intake.identity import IdentityStore
from gridflow_intake.ratelimit import Limit, RedisRateLimiter
from tests.credentials import bearer

pytestmark = pytest.mark.e2e
REDIS_URL = os.environ.get("GRIDFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def gridflow():
    g = EmbeddedGridflow(clock_mode="simulated")
    g.load_jurisdiction()
    yield g
    g.close()


def _replica(gridflow, redis_url: str):
    """Another intake replica on the same database: an API with an Access of its own."""
    gridflow.runtimes["intake"].extras["access"] = Access(
        IdentityStore(gridflow.engine, gridflow.lock),
        limiter=RedisRateLimiter(redis_url),
        limits=Limits(key=Limit(1000, 60)),
    )
    return gridflow.api()


def _report() -> bytes:
    return json.dumps(
        {
            "channel": "hotline",
            "external_id": f"rr-{uuid.uuid4().hex[:10]}",
            "description": "路灯不亮",
            "category": "component.streetlight",
            "location": {"grid_code": "330302001001001"},
        }
    ).encode()


@pytest.fixture
def hotline_key(gridflow):
    answer = gridflow.api().handle(
        "POST",
        "/api/v1/admin/keys",
        json.dumps({"channel": "hotline", "rate_limit": "6/min"}).encode(),
        bearer(gridflow.admin_token),
    )
    assert answer.status == 201, answer.body
    return bearer(answer.body["token"])


def test_two_replicas_share_one_budget_per_key(gridflow, hotline_key):
    first, second = _replica(gridflow, REDIS_URL), _replica(gridflow, REDIS_URL)
    statuses = []
    for i in range(8):
        api = first if i % 2 == 0 else second
        statuses.append(api.handle("POST", "/api/v1/reports", _report(), hotline_key).status)
    assert statuses[:6] == [201] * 6 and statuses[6:] == [429, 429], statuses


def test_a_redis_that_is_gone_degrades_to_per_replica_limits_never_to_refusals(
    gridflow, hotline_key
):
    # Nothing listens on port 1: every hit falls back to the replica's own memory.
    api = _replica(gridflow, "redis://127.0.0.1:1/0")
    statuses = [
        api.handle("POST", "/api/v1/reports", _report(), hotline_key).status for _ in range(8)
    ]
    assert statuses[:6] == [201] * 6 and statuses[6:] == [429, 429], statuses
