"""Rate limits at the door (in process, the embedded default's memory limiter): per address for
the anonymous and the public form, per key (its own limit, or the deployment's), per user; a
guessed token costs its address like any anonymous request; 429 always says when to come back."""

from __future__ import annotations

import json
import uuid

import pytest

from gridflow_intake.access import Access, Limits, parse_proxies
from gridflow_intake.identity import BEARER, IdentityStore
from gridflow_intake.ratelimit import Limit, MemoryRateLimiter
from tests.credentials import bearer
from tests.http_samples import REPORTS

POINT = {"lat": 28.05, "lon": 120.635}


def _limited(gridflow, limits: Limits, proxies: str = "") -> object:
    """The embedded Gridflow's API with the given limits (as its environment would set them)."""
    gridflow.runtimes["intake"].extras["access"] = Access(
        IdentityStore(gridflow.engine, gridflow.lock),
        limiter=MemoryRateLimiter(),
        limits=limits,
        trusted_proxies=parse_proxies(proxies),
    )
    return gridflow.api()


def _report(channel: str = "web") -> bytes:
    return json.dumps(
        {
            "channel": channel,
            "external_id": f"rl-{uuid.uuid4().hex[:10]}",
            "description": "路灯不亮",
            "category": "component.streetlight",
            "location": {"grid_code": "330302001001001"},
        }
    ).encode()


def _post(api, headers=None, channel="web", address="203.0.113.7"):
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    environ = EnvironBuilder(
        path=REPORTS,
        method="POST",
        data=_report(channel),
        headers={"Content-Type": "application/json", **(headers or {})},
        environ_base={"REMOTE_ADDR": address},
    ).get_environ()
    return api.answer(Request(environ))


def test_the_public_form_takes_a_few_reports_per_address_then_says_when_to_come_back(gridflow):
    api = _limited(gridflow, Limits(public_reports=Limit(3, 60)))
    statuses = [_post(api).status for _ in range(3)]
    assert statuses == [201, 201, 201], statuses
    refused = _post(api)
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 20
    assert "rate_limit" in refused.body["errors"]
    # Another address is not held back by this one.
    assert _post(api, address="198.51.100.9").status in (200, 201)


def test_a_client_cannot_choose_its_address_unless_it_is_the_trusted_proxy(gridflow):
    api = _limited(gridflow, Limits(public_reports=Limit(1, 60)))
    assert _post(api).status in (200, 201)
    # A forged X-Forwarded-For from an untrusted peer changes nothing.
    forged = _post(api, {"X-Forwarded-For": "192.0.2.1"})
    assert forged.status == 429
    # Behind the trusted proxy, the address it forwards is the client's.
    api = _limited(gridflow, Limits(public_reports=Limit(1, 60)), proxies="127.0.0.1")
    first = _post(api, {"X-Forwarded-For": "192.0.2.1"}, address="127.0.0.1")
    second = _post(api, {"X-Forwarded-For": "192.0.2.2"}, address="127.0.0.1")
    again = _post(api, {"X-Forwarded-For": "192.0.2.1"}, address="127.0.0.1")
    assert (first.status in (200, 201), second.status in (200, 201), again.status) == (
        True,
        True,
        429,
    )


def test_a_key_has_its_own_limit_and_a_flood_through_it_is_cut(gridflow):
    api = _limited(gridflow, Limits(key=Limit(1000, 60)))
    admin = bearer(gridflow.admin_token)
    made = api.handle(
        "POST",
        "/api/v1/admin/keys",
        json.dumps({"channel": "hotline", "rate_limit": "5/min"}).encode(),
        admin,
    )
    assert made.status == 201, made.body
    hotline = bearer(made.body["token"])
    statuses = [_post(api, hotline, channel="hotline").status for _ in range(8)]
    assert statuses[:5] == [201] * 5 and statuses[5:] == [429] * 3, statuses
    # Another key of the same channel has a budget of its own.
    other = api.handle(
        "POST", "/api/v1/admin/keys", json.dumps({"channel": "hotline"}).encode(), admin
    )
    assert _post(api, bearer(other.body["token"]), channel="hotline").status == 201


def test_a_user_is_limited_per_user_whatever_address_they_come_from(gridflow):
    api = _limited(gridflow, Limits(user=Limit(4, 60)))
    store = gridflow.identities()
    user = store.create_user(gridflow.store.active()[1], "duty", "command_center")
    _, token = store.issue(BEARER, label="t", user_id=user["user_id"])
    statuses = [
        _post(api, bearer(token), channel="hotline", address=f"10.0.0.{i}").status for i in range(6)
    ]
    assert statuses == [201, 201, 201, 201, 429, 429], statuses


def test_guessing_tokens_costs_the_address_like_any_anonymous_request(gridflow):
    api = _limited(gridflow, Limits(anonymous=Limit(10, 60)))
    guesses = [
        _post(api, bearer("gft_" + uuid.uuid4().hex + "A" * 11), channel="hotline").status
        for _ in range(14)
    ]
    assert guesses[:10] == [401] * 10 and set(guesses[10:]) == {429}, guesses


@pytest.mark.parametrize("door", ["/healthz", "/metrics"])
def test_the_operators_doors_are_never_limited(gridflow, door):
    api = _limited(gridflow, Limits(anonymous=Limit(1, 60)))
    assert {api.handle("GET", door).status for _ in range(5)} == {200}
