"""Every route of the API asked as an attacker would: with no credential, with a broken one, with
one of the wrong kind or role, and with the right one (issue 6, point 8).

The walk is driven by ``api.ROUTES``: each route is called with what its ``access`` policy says,
so a route added later is walked without a change here, and a route whose policy the walk does
not know fails (``GATES`` below must learn it first). Each route is walked on a city of its own
(an embedded Gridflow with Lucheng, a case of its own, a user of every role, a channel key and a
department's credential), because the right caller's call may change what it touches: a reset
empties the cases, a disabled user stays disabled.

Besides the walk: a case's neighbours (another department, another grid, another street) get
the very 404 a case that does not exist gets; ``from`` is checked, never believed; a channel key
reports on its own channel only. No refusal names a token or says whether what the path names
exists.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass, field

import pytest
from werkzeug.routing import IntegerConverter
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gridflow_app.embedded import EmbeddedGridflow
from gridflow_common.domain import access as a
from gridflow_intake import api as intake_api
from gridflow_intake.access import SESSION_COOKIE, Forbidden
from gridflow_intake.api import ROUTES, URL_MAP, Answer, IntakeApi, Route
from gridflow_intake.identity import BEARER, SESSION, SIGNIN
from tests.conftest import lucheng_files
from tests.unit.test_intake_cases import _pump

# -- the city every walk runs in -------------------------------------------------------------

# A streetlight out in Tengqiao: held by the urban-management station there (藤桥执法中队),
# led by its bureau; grid 330302104001001, community 330302104001, street 330302104.
STREETLIGHT = {
    "channel": "web",
    "description": "藤桥戍浦社区门口的路灯不亮",
    "category": "component.streetlight",
    "location": {"lat": 28.05, "lon": 120.64},
}
HOLDER_UNIT = "urban_management-330302104"
HOLDER_DEPARTMENT = "urban_management"

# One caller of every kind, each with every right to the case above (so that a refusal is the
# policy's, not the case's).
INSIDERS: dict[str, tuple[str, str | None]] = {
    "admin": (a.ADMIN, None),
    "command_center": (a.COMMAND_CENTER, None),
    "leader": (a.LEADER, "urban_management-330302"),
    "department": (a.DEPARTMENT, HOLDER_DEPARTMENT),
    "street": (a.STREET, "330302104"),
    "community": (a.COMMUNITY, "330302104001"),
    "grid_worker": (a.GRID_WORKER, "330302104001001"),
}
HOLDER_KEY = "holder_key"  # the urban-management bureau's own system
CHANNEL_KEY = "channel_key"  # the hotline system
CALLERS = (*INSIDERS, HOLDER_KEY, CHANNEL_KEY)
USERS = tuple(INSIDERS)

# Callers with the same rights elsewhere in the city: the case is none of their business.
OUTSIDERS: dict[str, tuple[str, str | None]] = {
    "other_department": (a.DEPARTMENT, "police"),
    "other_station": (a.DEPARTMENT, "police-330302104"),
    "other_leader": (a.LEADER, "police-330302"),
    "other_street": (a.STREET, "330302001"),
    "other_community": (a.COMMUNITY, "330302104002"),
    "other_grid_worker": (a.GRID_WORKER, "330302104001002"),
}

# What a path value names when the walk names nothing that exists: the answer of every refusal
# must be the same for these as for the real ones.
NOTHING = {
    "case_id": "GF-20260105-NOSUCHCASE",
    "username": "nobody-by-this-name",
    "credential_id": "k-000000000000",
    "token": "gfr_" + "A" * 43,
}
# A path value the walk has no real value for (a route added later): still walked, with this.
UNKNOWN_VALUE = "walk-unknown"


@dataclass
class City:
    gridflow: EmbeddedGridflow
    api: IntakeApi
    case_id: str
    tokens: dict[str, str]
    # Path values naming things that exist: a case, a user, a key nobody calls with, the case's
    # progress link.
    real: dict[str, str]
    # Every secret issued in this city, and every string sent as one: no answer may carry any.
    secrets: set[str] = field(default_factory=set)

    def headers(self, who: str | None) -> dict[str, str]:
        return {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}

    def call(
        self, method: str, path: str, body: object = None, headers: dict | None = None
    ) -> Answer:
        raw = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        return self.api.handle(method, path, raw, headers or {})

    def admin(self, method: str, path: str, body: object = None) -> Answer:
        return self.call(method, path, body, self.headers("admin"))


def _user(city: City, username: str, role: str, scope: str | None) -> str:
    """A user made as an admin makes one (the admin API), signed in with a bearer token."""
    answer = city.admin(
        "POST", "/api/v1/admin/users", {"username": username, "role": role, "scope": scope}
    )
    assert answer.status == 201, answer.body
    city.secrets.add(answer.body["signin_link"].rpartition("token=")[2])
    _, token = city.gridflow.identities().issue(
        BEARER, label=f"walk {username}", user_id=answer.body["user"]["user_id"]
    )
    city.secrets.add(token)
    return token


def _key(city: City, **body: str) -> tuple[str, str]:
    """A channel's key or a department's credential, made through the admin API."""
    answer = city.admin("POST", "/api/v1/admin/keys", body)
    assert answer.status == 201, answer.body
    city.secrets.add(answer.body["token"])
    return answer.body["key"]["credential_id"], answer.body["token"]


def build_city(gridflow: EmbeddedGridflow, outsiders: bool = False) -> City:
    api = gridflow.api()
    city = City(gridflow, api, "", {"admin": gridflow.admin_token}, {}, {gridflow.admin_token})
    answer = city.call("POST", "/api/v1/reports", STREETLIGHT)
    assert answer.status == 201, answer.body
    city.case_id = answer.body["case_id"]
    # The reporter's progress link: the last part of its path is the token.
    progress_token = answer.body["progress_url"].rstrip("/").rpartition("/")[2]
    city.secrets.add(progress_token)
    _pump(gridflow)
    view = city.admin("GET", f"/api/v1/cases/{city.case_id}")
    assert (view.body["handler"], view.body["lead"]) == (HOLDER_UNIT, HOLDER_DEPARTMENT)
    people = {**INSIDERS, **(OUTSIDERS if outsiders else {})}
    for who, (role, scope) in people.items():
        if who != "admin":
            city.tokens[who] = _user(city, f"walk-{who.replace('_', '-')}", role, scope)
    _, city.tokens[HOLDER_KEY] = _key(city, holder=HOLDER_DEPARTMENT)
    _, city.tokens[CHANNEL_KEY] = _key(city, channel="hotline")
    if outsiders:
        _, city.tokens["other_holder_key"] = _key(city, holder="police")
    _user(city, "walk-target", a.STREET, "330302001")
    spare_key, _ = _key(city, holder="police-330302104")
    city.real = {
        "case_id": city.case_id,
        "username": "walk-target",
        "credential_id": spare_key,
        "token": progress_token,
    }
    return city


# -- what each policy lets through ----------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """What the walk expects of a policy: whether a request without a credential is turned away
    (401), whether a credential is looked at at all (not where nothing is asked: there the
    endpoint alone decides, as for a caller who sent none), which of the walk's callers pass,
    and the caller the walk expects to get an answer (neither 401 nor 403)."""

    needs_credential: bool
    checks_credential: bool
    admits: frozenset[str]
    right: str | None


GATES: dict[str, Gate] = {
    intake_api.OPEN: Gate(False, False, frozenset(CALLERS), None),
    intake_api.ANYONE: Gate(False, True, frozenset(CALLERS), "command_center"),
    intake_api.SIGNED_IN: Gate(True, True, frozenset({*USERS, HOLDER_KEY}), HOLDER_KEY),
    intake_api.STAFF: Gate(True, True, frozenset(USERS), "command_center"),
    intake_api.COMMAND: Gate(True, True, frozenset({"admin", "command_center"}), "command_center"),
    intake_api.ADMIN: Gate(True, True, frozenset({"admin"}), "admin"),
    intake_api.ANY_CREDENTIAL: Gate(True, True, frozenset(CALLERS), CHANNEL_KEY),
    # A department's signature or its credential; without either, 401 (the signed requests are
    # walked in test_department_updates.py).
    intake_api.DEPARTMENT_SYSTEM: Gate(
        True, True, frozenset({HOLDER_KEY, "department"}), HOLDER_KEY
    ),
}


def gate_of(route: Route) -> Gate:
    gate = GATES.get(route.access)
    if gate is None:
        pytest.fail(
            f"{route.method} {route.path} has access policy {route.access!r}, which this walk "
            "does not know: teach GATES what it lets through"
        )
    return gate


# Bodies that make the right caller's call a real one; a route the walk does not know gets an
# empty object (a refusal of the body is still an answer past the gate).
BODIES: dict[str, object] = {
    "post_report": {**STREETLIGHT, "channel": "hotline", "external_id": "walk-1"},
    "post_update": {"status": "accepted"},
    "post_verify": {"passed": True},
    "post_evaluate": {"satisfaction": 5},
    # An order every admitted caller may be refused by the endpoint (a leader only comments),
    # and the command center is given.
    "post_order": {"kind": "supervise", "reason": "请尽快办结"},
    "put_clock": {"now": "2026-01-05T10:00:00+08:00"},
    "post_reset": {},
    "post_user": {"username": "walk-new", "role": a.STREET, "scope": "330302104"},
    "post_user_disable": {},
    "post_signin_link": {},
    "post_key": {"channel": "wechat"},
}


def _body(route: Route) -> object:
    if route.endpoint == "put_jurisdiction":
        return {"files": lucheng_files()}
    if route.endpoint in BODIES:
        return BODIES[route.endpoint]
    return {} if route.body_limit is not None else None


def _path(route: Route, values: dict[str, str]) -> str:
    rule = next(r for r in URL_MAP.iter_rules() if r.endpoint is route)
    given: dict[str, object] = {}
    for name in rule.arguments:
        # A number where the rule takes only numbers, so the route is still reached.
        unknown = 1 if isinstance(rule._converters[name], IntegerConverter) else UNKNOWN_VALUE
        given[name] = values.get(name, unknown)
    return URL_MAP.bind("gridflow").build(route, given, method=route.method)


# -- credentials that must never let anyone in -----------------------------------------------------


def broken_credentials(city: City) -> dict[str, dict[str, str]]:
    """name -> the headers of a request carrying that credential."""
    store = city.gridflow.identities()
    cc = store.user("walk-command-center")
    assert cc is not None
    revoked_record, revoked = store.issue(BEARER, label="walk revoked", user_id=cc["user_id"])
    assert store.revoke(revoked_record["credential_id"])
    _, expired = store.issue(
        BEARER, label="walk expired", user_id=cc["user_id"], ttl=dt.timedelta(seconds=-1)
    )
    revoked_key_id, revoked_key = _key(city, channel="wechat")
    assert city.admin("DELETE", f"/api/v1/admin/keys/{revoked_key_id}").status == 200
    _, link = store.issue(SIGNIN, label="walk link", user_id=cc["user_id"])
    _, session = store.issue(SESSION, label="walk session", user_id=cc["user_id"])
    disabled_token = _user(city, "walk-disabled", a.COMMAND_CENTER, None)
    assert city.admin("POST", "/api/v1/admin/users/walk-disabled/disable", {}).status == 200
    unknown = {kind: f"{prefix}{secrets.token_urlsafe(32)}" for kind, prefix in _PREFIXES.items()}
    city.secrets.update([revoked, expired, revoked_key, link, session, *unknown.values()])
    bearer = {
        "malformed": "walk-not-a-token-5d1e",
        "empty": "",
        "too long": "gft_" + "A" * 5000,
        "admin token cut short": city.tokens["admin"][:-1],
        "admin token one letter off": city.tokens["admin"][:-1]
        + ("A" if city.tokens["admin"][-1] != "A" else "B"),
        "unknown user token": unknown[BEARER],
        "unknown channel key": unknown[a.CHANNEL_KEY],
        "unknown department credential": unknown[a.HOLDER_KEY],
        "revoked user token": revoked,
        "expired user token": expired,
        "revoked channel key": revoked_key,
        "token of a disabled user": disabled_token,
        "sign-in link as a token": link,
        "session as a bearer token": session,
    }
    out = {name: {"Authorization": f"Bearer {token}"} for name, token in bearer.items()}
    out["admin token under another scheme"] = {"Authorization": f"Basic {city.tokens['admin']}"}
    out["X-Api-Key unknown"] = {"X-Api-Key": unknown[a.HOLDER_KEY]}
    out["X-Api-Key blank"] = {"X-Api-Key": "   "}
    out["forged session cookie"] = {"Cookie": f"{SESSION_COOKIE}={unknown[SESSION]}"}
    out["bearer token as session cookie"] = {"Cookie": f"{SESSION_COOKIE}={city.tokens['admin']}"}
    city.secrets.update(token for token in bearer.values() if len(token) > 8)
    return out


_PREFIXES = {BEARER: "gft_", a.CHANNEL_KEY: "gfk_", a.HOLDER_KEY: "gfd_", SESSION: "gfs_"}
TOKEN_SHAPE = re.compile(r"gf[a-z]_[A-Za-z0-9_-]{8,}")


def _text(answer: Answer) -> str:
    body = answer.body
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else json.dumps(body)


def assert_names_no_secret(city: City, answer: Answer, context: str) -> None:
    text = _text(answer)
    leaked = [s for s in city.secrets if s in text]
    assert not leaked, f"{context}: the answer carries a secret: {text[:300]}"
    assert not TOKEN_SHAPE.search(text), f"{context}: the answer carries a token: {text[:300]}"


def _same(answer: Answer) -> tuple:
    return answer.status, answer.body, answer.content_type, answer.headers


# -- the walk ------------------------------------------------------------------------------------


def _route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


def test_every_route_has_a_policy_the_walk_knows():
    unknown = [_route_id(r) for r in ROUTES if r.access not in GATES]
    assert not unknown, f"routes whose access policy the walk does not know: {unknown}"
    assert set(GATES) == set(intake_api.POLICIES), (
        "the walk's policies and the API's differ: teach GATES the new ones"
    )


@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_route_is_closed_to_whoever_its_policy_does_not_admit(gridflow, route):
    gate = gate_of(route)
    city = build_city(gridflow)
    broken = broken_credentials(city)
    real, nothing = _path(route, city.real), _path(route, NOTHING)
    body = _body(route)

    def call(path: str, headers: dict[str, str]) -> Answer:
        return city.call(route.method, path, body, headers)

    def refused(status: int, headers: dict[str, str], context: str) -> None:
        """Refused with ``status`` for what the path names and for nothing alike; no secret in
        the answer."""
        answer = call(real, headers)
        assert answer.status == status, f"{context}: {answer.status} {answer.body}"
        assert_names_no_secret(city, answer, context)
        if status == 401:
            assert answer.headers.get("WWW-Authenticate") == "Bearer", context
        assert _same(call(nothing, headers)) == _same(answer), (
            f"{context}: the refusal tells a path naming something from one naming nothing"
        )

    if not gate.checks_credential:
        # No credential is looked at: whatever is sent, the endpoint alone decides, and it
        # decides as for a caller who sent none.
        anonymous = call(real, {})
        assert anonymous.status < 500, anonymous.body
        sent = {**broken, **{who: city.headers(who) for who in CALLERS}}
        for name, headers in sent.items():
            answer = call(real, headers)
            assert answer.status < 500, (name, answer.body)
            assert_names_no_secret(city, answer, name)
            if answer.status in (401, 403):
                assert _same(answer) == _same(anonymous), f"{name}: the credential was looked at"
        return

    # No credential at all.
    if gate.needs_credential:
        refused(401, {}, "no credential")
    else:
        answer = call(real, {})
        assert answer.status < 500, answer.body

    # A credential that is not good: refused, never ignored, never a 500.
    for name, headers in broken.items():
        refused(401, headers, name)

    # Good credentials the policy does not admit.
    for who in CALLERS:
        if who not in gate.admits:
            refused(403, city.headers(who), f"{who} (not admitted by {route.access})")

    # The ones it admits pass the gate (asked directly, so an endpoint's own refusal cannot
    # hide a gate that turns them away) ...
    for who in sorted(gate.admits):
        environ = EnvironBuilder(path=real, method=route.method, headers=city.headers(who))
        try:
            city.api._caller(route, Request(environ.get_environ()))
        except Forbidden as exc:
            pytest.fail(f"{who} is admitted by {route.access} and was turned away: {exc}")

    # ... and the right one gets an answer: its call first, before any other caller's call
    # changes what it acts on.
    assert gate.right is not None
    answer = call(real, city.headers(gate.right))
    assert answer.status not in (401, 403), f"{gate.right}: {answer.status} {answer.body}"
    assert answer.status < 500, answer.body
    # Every other admitted caller: never a 401 or a 500; an endpoint's own 403 (a case it may
    # not touch, a unit it does not answer for) tells nothing of what the path names.
    for who in sorted(gate.admits - {gate.right}):
        answer = call(real, city.headers(who))
        assert answer.status != 401 and answer.status < 500, (who, answer.status, answer.body)
        if answer.status == 403:
            assert_names_no_secret(city, answer, who)
            assert _same(call(nothing, city.headers(who))) == _same(answer), who


def test_a_signed_in_browser_session_passes_where_its_user_would(gridflow):
    """The cookie is a credential like the others: a good session reads what its user may, and
    a write needs the CSRF header (double submit)."""
    city = build_city(gridflow)
    store = gridflow.identities()
    user = store.user("walk-street")
    assert user is not None
    _, session = store.issue(SESSION, label="walk session", user_id=user["user_id"])
    cookie = {"Cookie": f"{SESSION_COOKIE}={session}"}
    assert city.call("GET", f"/api/v1/cases/{city.case_id}", headers=cookie).status == 200
    write = city.call(
        "POST",
        f"/api/v1/cases/{city.case_id}/updates",
        {"status": "accepted", "from": "center-330302104"},
        cookie,
    )
    assert write.status == 403 and "csrf" in write.body["errors"], write.body
    assert session not in _text(write)


# -- a case's neighbours ---------------------------------------------------------------------------


@pytest.fixture
def city(gridflow) -> City:
    return build_city(gridflow, outsiders=True)


def _without(answer: Answer, case_id: str) -> tuple:
    """The answer with the case id it names replaced, to compare two cases' answers."""
    return answer.status, _text(answer).replace(case_id, "<case>"), answer.headers


# Roles with no unit to send an update as when ``from`` is not given.
NAME_NO_UNIT = ("other_leader", "other_street", "other_grid_worker")


@pytest.mark.parametrize(
    "who",
    [
        "other_department",
        "other_station",
        "other_holder_key",
        "other_leader",
        "other_street",
        "other_community",
        "other_grid_worker",
    ],
)
def test_a_case_of_someone_else_is_answered_as_no_case_at_all(city, who):
    headers = city.headers(who)
    for method, suffix, body in (
        ("GET", "", None),
        # The case page's map (gridflow_intake/board_api.py).
        ("GET", "/place", None),
        # The notices sent for the case (asked of notify only for a case the caller may read).
        ("GET", "/notifications", None),
        ("POST", "/updates", {"status": "accepted"}),
    ):
        theirs = city.call(method, f"/api/v1/cases/{city.case_id}{suffix}", body, headers)
        none = city.call(method, f"/api/v1/cases/{NOTHING['case_id']}{suffix}", body, headers)
        if method == "POST" and who in NAME_NO_UNIT:
            # Those who answer for no one unit are asked to name one, before any case is
            # looked at.
            assert theirs.status == 400 and "from" in theirs.body["errors"], theirs.body
        else:
            assert theirs.status == 404, (method, theirs.status, theirs.body)
        assert _without(theirs, city.case_id) == _without(none, NOTHING["case_id"]), method
    # Nothing was changed by the attempts.
    view = city.admin("GET", f"/api/v1/cases/{city.case_id}").body
    assert view["status"] == "dispatched"
    assert [e["kind"] for e in view["timeline"]] == ["registered", "routed", "dispatched"]


@pytest.mark.parametrize(
    ("who", "claimed"),
    [
        (HOLDER_KEY, "police-330302104"),  # a department's credential claiming another's station
        ("department", "police"),
        ("department", "center-330302104"),
        ("street", HOLDER_UNIT),  # a street answers for its offices, not for a bureau's station
        ("street", "center-330302001"),  # ... nor for another street's center
        ("community", "office-330302104002"),
        ("grid_worker", HOLDER_UNIT),
        ("leader", HOLDER_UNIT),
        ("command_center", HOLDER_UNIT),
        ("admin", HOLDER_UNIT),
    ],
)
def test_from_naming_a_unit_the_credential_does_not_answer_for_is_refused(city, who, claimed):
    body = {"status": "accepted", "from": claimed}
    theirs = city.call("POST", f"/api/v1/cases/{city.case_id}/updates", body, city.headers(who))
    none = city.call("POST", f"/api/v1/cases/{NOTHING['case_id']}/updates", body, city.headers(who))
    assert theirs.status == 403 and "from" in theirs.body["errors"], theirs.body
    assert _without(theirs, city.case_id) == _without(none, NOTHING["case_id"])
    assert_names_no_secret(city, theirs, who)
    assert city.admin("GET", f"/api/v1/cases/{city.case_id}").body["status"] == "dispatched"


@pytest.mark.parametrize(
    ("who", "sender"),
    [(HOLDER_KEY, HOLDER_UNIT), (HOLDER_KEY, None), ("department", HOLDER_UNIT)],
)
def test_from_the_credential_does_answer_for_is_taken(city, who, sender):
    body = {"status": "accepted", **({"from": sender} if sender else {})}
    answer = city.call("POST", f"/api/v1/cases/{city.case_id}/updates", body, city.headers(who))
    assert answer.status == 202, answer.body
    assert city.admin("GET", f"/api/v1/cases/{city.case_id}").body["status"] == "accepted"


def test_a_channel_key_reports_on_its_own_channel_only(city):
    spots = iter(range(1, 100))

    def report(channel: str, headers: dict[str, str]) -> Answer:
        # 110 m apart: each report a case of its own, none joining another (合并 is 50 m).
        where = {"lat": 28.05 + 0.001 * next(spots), "lon": 120.64}
        body = {**STREETLIGHT, "channel": channel, "location": where}
        return city.call("POST", "/api/v1/reports", body, headers)

    hotline = city.headers(CHANNEL_KEY)
    other = report("grid_app", hotline)
    assert other.status == 403 and "channel" in other.body["errors"], other.body
    assert_names_no_secret(city, other, "hotline key on grid_app")
    nobody = report("grid_app", {})
    assert nobody.status == 401 and nobody.headers.get("WWW-Authenticate") == "Bearer"
    assert report("web", {}).status == 201
    assert report("hotline", hotline).status == 201
    # A grid worker reports through the grid app as themself; a street office does not.
    assert report("grid_app", city.headers("grid_worker")).status == 201
    assert report("grid_app", city.headers("street")).status == 403
    # A key that is given and is not good is refused, even where none is needed.
    bad = report("web", {"Authorization": "Bearer gfk_" + secrets.token_urlsafe(32)})
    assert bad.status == 401, bad.body


def test_area_roles_see_their_own_area_only(city):
    """A grid worker the cases of their grid, a street its street, a community its community;
    the next one over gets the answer a case that does not exist gets."""
    path = f"/api/v1/cases/{city.case_id}"
    for who in ("grid_worker", "street", "community"):
        assert city.call("GET", path, headers=city.headers(who)).status == 200, who
    # A case in another grid and street: Qingyuan, 五马街道.
    elsewhere = city.call(
        "POST",
        "/api/v1/reports",
        {**STREETLIGHT, "location": {"lat": 27.995, "lon": 120.556}},
    )
    assert elsewhere.status == 201, elsewhere.body
    _pump(city.gridflow)
    there = f"/api/v1/cases/{elsewhere.body['case_id']}"
    nowhere = f"/api/v1/cases/{NOTHING['case_id']}"
    for who in ("grid_worker", "street", "community", "other_grid_worker"):
        answer = city.call("GET", there, headers=city.headers(who))
        none = city.call("GET", nowhere, headers=city.headers(who))
        assert answer.status == 404, (who, answer.body)
        assert _without(answer, elsewhere.body["case_id"]) == _without(none, NOTHING["case_id"])
    assert city.call("GET", there, headers=city.headers("other_street")).status == 200
    assert city.call("GET", there, headers=city.headers("command_center")).status == 200


# -- lists and the board's summary (gridflow_intake/cases_api.py) ----------------------------------


def _listed(city: City, who: str) -> tuple[list[str], int, list[str], int]:
    """(case ids in the list, its total, case ids in the summary's late list, open count)."""
    listed = city.call("GET", "/api/v1/cases?limit=200", headers=city.headers(who))
    assert listed.status == 200, (who, listed.body)
    summary = city.call("GET", "/api/v1/board/summary", headers=city.headers(who))
    assert summary.status == 200, (who, summary.body)
    return (
        [i["case_id"] for i in listed.body["items"]],
        listed.body["totals"]["all"],
        [i["case_id"] for i in summary.body["late"]],
        summary.body["open"],
    )


def test_lists_and_the_summary_show_a_case_to_its_insiders_and_to_nobody_else(city):
    for who in (*INSIDERS, HOLDER_KEY):
        ids, total, _, open_count = _listed(city, who)
        assert ids == [city.case_id] and total == 1 and open_count == 1, who
    for who in (*OUTSIDERS, "other_holder_key"):
        ids, total, late, open_count = _listed(city, who)
        assert ids == [] and total == 0 and late == [] and open_count == 0, who
    # Filters never widen the scope: naming the case's street, unit or department shows an
    # outsider nothing either.
    for query in ("street=330302104", f"unit={HOLDER_UNIT}", f"department={HOLDER_DEPARTMENT}"):
        answer = city.call("GET", f"/api/v1/cases?{query}", headers=city.headers("other_street"))
        assert answer.status == 200 and answer.body["items"] == [], (query, answer.body)
        assert answer.body["totals"]["all"] == 0
    for path in ("/api/v1/cases", "/api/v1/board/summary"):
        assert city.call("GET", path, headers=city.headers(CHANNEL_KEY)).status == 403
        assert city.call("GET", path).status == 401


# -- no read shows a case outside the caller's scope -------------------------------------------------

OUTSIDER_CALLERS = (*OUTSIDERS, "other_holder_key")
# Capability links: whoever holds the token is the one it was given to (the reporter's progress
# link, a holder's one-time action link); they are walked in their own tests.
CAPABILITY_ARGUMENTS = {"token"}
# Routes that hold a stream open: walked, bounded, by their own tests.
STREAMING: set[str] = {"get_board_events"}  # tests/unit/test_board.py walks its scope


def _reads() -> list[Route]:
    out = []
    for route in ROUTES:
        rule = next(r for r in URL_MAP.iter_rules() if r.endpoint is route)
        if route.method != "GET" or route.endpoint in STREAMING:
            continue
        if CAPABILITY_ARGUMENTS & set(rule.arguments):
            continue
        out.append(route)
    return out


@pytest.mark.parametrize("route", _reads(), ids=_route_id)
def test_no_read_shows_a_case_outside_the_callers_scope(city, route):
    """Every GET of the API (a route added later included), asked by each caller whose scope
    the walk's case lies outside, with the path naming that case where it takes one: the answer
    names neither the case nor what it says, whatever its status."""
    path, nothing = _path(route, city.real), _path(route, NOTHING)
    for who in OUTSIDER_CALLERS:
        answer = city.call("GET", path, None, city.headers(who))
        text = _text(answer)
        assert answer.status < 500, (who, answer.status, text[:300])
        assert STREETLIGHT["description"] not in text, f"{who} reads the case's words at {path}"
        if answer.status >= 400:
            # A refusal may repeat the id the caller asked for, as it does for a case that does
            # not exist: it must say nothing else.
            none = city.call("GET", nothing, None, city.headers(who))
            assert _without(answer, city.case_id) == _without(none, NOTHING["case_id"]), who
        else:
            assert city.case_id not in text, f"{who} reads {city.case_id} through {path}"


@pytest.mark.parametrize(
    "who",
    [
        "other_department",
        "other_station",
        "other_leader",
        "other_street",
        "other_community",
        "other_grid_worker",
    ],
)
def test_the_assessment_of_a_caller_outside_the_case_counts_none_of_it(city, who):
    for by in ("department", "unit", "street", "grid_worker"):
        theirs = city.call("GET", f"/api/v1/assessment?by={by}", headers=city.headers(who))
        assert theirs.status == 200, theirs.body
        assert theirs.body["rows"] == [], (by, theirs.body["rows"])
    hotspots = city.call("GET", "/api/v1/hotspots", headers=city.headers(who))
    assert hotspots.status == 200 and hotspots.body["items"] == []
    # The insiders count it.
    street = city.call("GET", "/api/v1/assessment?by=street", headers=city.headers("street"))
    assert [row["registered"] for row in street.body["rows"]] == [1], street.body
