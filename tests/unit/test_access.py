"""Who may do what (gridflow_common.domain.access) and the identity store behind it: roles and
scopes against Lucheng, holder credentials that answer only for their own units, passwords and
tokens never stored as given, tokens that expire, are revoked or die with their user."""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from gridflow_app.folders import LUCHENG
from gridflow_common.domain import access as a
from gridflow_common.domain.jurisdiction_files import load_folder
from gridflow_intake import models
from gridflow_intake.identity import BEARER, SIGNIN, IdentityError, token_hash
from tests.credentials import SignedApi, bearer

J = load_folder(LUCHENG)
TENGQIAO_GRID = "330302104001001"  # 戍浦社区第1网格, 藤桥镇
TENGQIAO = "330302104"
WUMA = "330302001"


def user(role: str, scope: str | None = None) -> a.Principal:
    return a.Principal(a.USER, f"u-{role}", role, "k-test", role=role, scope=scope)


def holder(code: str) -> a.Principal:
    return a.Principal(a.HOLDER_KEY, "k-h", code, "k-h", scope=code)


CASE = a.CaseFacts(
    area_code=TENGQIAO_GRID,
    holder="environment-330302104",
    lead="environment",
    assisting=("health",),
)


# -- scopes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "scope", "why"),
    [
        ("mayor", None, "unknown role"),
        ("admin", "330302", "no scope"),
        ("department", None, "needs a scope"),
        ("department", "office-330302104001", "neither"),
        ("street", TENGQIAO_GRID, "street area"),
        ("grid_worker", TENGQIAO, "grid area"),
        ("leader", "nobody-1", "no unit"),
        ("command_center", TENGQIAO, "district"),
    ],
)
def test_a_scope_that_does_not_fit_the_role_is_refused_saying_why(role, scope, why):
    with pytest.raises(a.ScopeError, match=why):
        a.check_scope(role, scope, J)


def test_scopes_that_fit_are_taken():
    assert a.check_scope("department", "environment", J) == "environment"
    assert a.check_scope("department", "environment-330302104", J) == "environment-330302104"
    assert a.check_scope("grid_worker", TENGQIAO_GRID, J) == TENGQIAO_GRID
    assert a.check_scope("command_center", None, J) is None


# -- who answers for whom --------------------------------------------------------------------------


def test_a_department_credential_answers_for_its_stations_a_station_only_for_itself():
    assert a.speaks_for(holder("environment"), "environment-330302104", J)
    assert a.speaks_for(holder("environment"), "environment", J)
    assert not a.speaks_for(holder("environment"), "police-330302104", J)
    station = holder("environment-330302104")
    assert a.speaks_for(station, "environment-330302104", J)
    assert not a.speaks_for(station, "environment", J)
    assert not a.speaks_for(station, "environment-330302001", J)


def test_area_users_answer_for_their_own_offices_only():
    assert a.speaks_for(user("community", "330302104001"), "office-330302104001", J)
    assert not a.speaks_for(user("community", "330302104001"), "office-330302104002", J)
    assert a.speaks_for(user("street", TENGQIAO), "center-330302104", J)
    assert a.speaks_for(user("street", TENGQIAO), "office-330302104002", J)
    assert not a.speaks_for(user("street", TENGQIAO), "center-330302001", J)
    assert not a.speaks_for(user("street", TENGQIAO), "police-330302104", J)
    # Nobody else answers for a unit: not the admin, not a grid worker, not a channel's key.
    for principal in (
        user("admin"),
        user("grid_worker", TENGQIAO_GRID),
        a.Principal(a.CHANNEL_KEY, "k", "hotline", "k", channel="hotline"),
    ):
        assert not a.speaks_for(principal, "environment-330302104", J)


# -- who sees a case -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "sees"),
    [
        (user("admin"), True),
        (user("command_center"), True),
        (holder("environment"), True),
        (holder("environment-330302104"), True),
        (holder("health"), True),  # assisting
        (holder("environment-330302001"), False),
        (holder("police"), False),
        (user("department", "police"), False),
        (user("street", TENGQIAO), True),
        (user("street", WUMA), False),
        (user("community", "330302104001"), True),
        (user("community", "330302104002"), False),
        (user("grid_worker", TENGQIAO_GRID), True),
        (user("grid_worker", "330302104001002"), False),
        (user("leader", "environment-330302"), True),
        (user("leader", "police-330302"), False),
        (user("leader", "command-330302"), True),
        (a.Principal(a.CHANNEL_KEY, "k", "hotline", "k", channel="hotline"), False),
    ],
    ids=lambda p: p.label if isinstance(p, a.Principal) else str(p),
)
def test_who_sees_a_case_of_tengqiao_held_by_its_environment_station(principal, sees):
    assert a.may_read_case(principal, CASE, J) is sees


def test_reports_need_the_channels_key_except_on_the_public_form():
    hotline = a.Principal(a.CHANNEL_KEY, "k", "hotline", "k", channel="hotline")
    assert a.may_report(None, "web")[0]
    assert a.may_report(None, "hotline")[:2] == (False, 401)
    assert a.may_report(hotline, "hotline")[0]
    assert a.may_report(hotline, "grid_app")[:2] == (False, 403)
    assert a.may_report(user("grid_worker", TENGQIAO_GRID), "grid_app")[0]
    assert a.may_report(user("grid_worker", TENGQIAO_GRID), "hotline")[:2] == (False, 403)
    assert a.may_report(user("command_center"), "hotline")[0]
    assert a.may_report(holder("environment"), "grid_app")[:2] == (False, 403)


# -- the identity store ----------------------------------------------------------------------------


@pytest.fixture
def store(gridflow):
    return gridflow.identities()


def _rows(gridflow, table: sa.Table) -> list[dict]:
    with gridflow.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table))]


def test_passwords_and_tokens_are_never_stored_as_given(gridflow, store):
    password = "correct horse battery staple"
    created = store.create_user(J, "wang.li", "command_center", password=password)
    _, token = store.issue(BEARER, label="script", user_id=created["user_id"])
    stored = json.dumps(
        [_rows(gridflow, models.users), _rows(gridflow, models.credentials)], default=str
    )
    assert password not in stored and token not in stored
    assert "$argon2id$" in stored and token_hash(token) in stored
    assert store.check_password("wang.li", password)["user_id"] == created["user_id"]
    assert store.check_password("wang.li", password + "x") is None
    assert store.check_password("nobody", password) is None


def test_a_token_stops_working_when_revoked_expired_or_its_user_is_disabled(gridflow, store):
    created = store.create_user(J, "zhao", "department", scope="environment")
    record, token = store.issue(BEARER, label="t", user_id=created["user_id"])
    principal, _ = store.resolve(token)
    assert (principal.role, principal.scope) == ("department", "environment")
    assert store.revoke(record["credential_id"])
    assert store.resolve(token) is None

    record, token = store.issue(BEARER, label="t", user_id=created["user_id"])
    with gridflow.engine.begin() as conn:
        conn.execute(
            sa.update(models.credentials)
            .where(models.credentials.c.credential_id == record["credential_id"])
            .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
        )
    assert store.resolve(token) is None

    _, token = store.issue(BEARER, label="t", user_id=created["user_id"])
    assert store.resolve(token) is not None
    assert store.disable_user("zhao")
    assert store.resolve(token) is None


@pytest.mark.parametrize(
    "token",
    ["", "gft_", "gft_" + "A" * 43 + "\x00", "x" * 10_000, "gfl_" + "A" * 43, "令牌" * 30],
    ids=["empty", "prefix", "nul", "huge", "unknown-link", "chinese"],
)
def test_hostile_tokens_are_refused_never_an_error(store, token):
    assert store.resolve(token) is None


def test_a_signin_link_is_spent_once_even_by_twenty_at_once(store):
    created = store.create_user(J, "li", "grid_worker", scope=TENGQIAO_GRID)
    _, link = store.issue(SIGNIN, label="link", user_id=created["user_id"])
    assert store.resolve(link) is None  # a link is no bearer token
    with ThreadPoolExecutor(20) as pool:
        redeemed = list(pool.map(lambda _: store.redeem_signin(link), range(20)))
    assert sum(r is not None for r in redeemed) == 1


def test_users_are_checked_against_the_jurisdiction_and_names_are_unique(store):
    with pytest.raises(IdentityError) as exc:
        store.create_user(J, "bad name!", "admin")
    assert exc.value.field == "username"
    with pytest.raises(IdentityError) as exc:
        store.create_user(J, "zhou", "street", scope=TENGQIAO_GRID)
    assert exc.value.field == "scope"
    store.create_user(J, "zhou", "street", scope=TENGQIAO)
    with pytest.raises(IdentityError) as exc:
        store.create_user(J, "zhou", "street", scope=TENGQIAO)
    assert exc.value.status == 409


# -- through the API ---------------------------------------------------------------------------


def _report_case(api) -> str:
    body = {
        "channel": "grid_app",
        "description": "一户民房内存放大量医疗废弃物",
        "category": "event.medical_waste",
        "location": {"lat": 28.05, "lon": 120.635},
    }
    answer = api.handle("POST", "/api/v1/reports", json.dumps(body).encode())
    assert answer.status == 201, answer.body
    return answer.body["case_id"]


def test_from_is_checked_against_the_credential_never_taken_on_its_word(gridflow):
    api = SignedApi(gridflow)
    case_id = _report_case(api)
    gridflow.start()
    try:
        # Until routing has dispatched it, nobody holds it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            view = api.handle("GET", f"/api/v1/cases/{case_id}").body
            if view["status"] == "dispatched":
                break
            time.sleep(0.05)  # bounded wait for the embedded services
        assert view["handler"] == "environment-330302104", view
        path = f"/api/v1/cases/{case_id}/updates"
        station = bearer(api.holder_token("environment-330302104"))
        # The station's credential may not claim to be its department...
        claimed = api.handle(
            "POST",
            path,
            json.dumps({"from": "environment", "status": "accepted"}).encode(),
            station,
        )
        assert claimed.status == 403 and "from" in claimed.body["errors"]
        # ...nor the admin a department.
        admin = bearer(gridflow.admin_token)
        claimed = api.handle(
            "POST",
            path,
            json.dumps({"from": "environment-330302104", "status": "accepted"}).encode(),
            admin,
        )
        assert claimed.status == 403 and "from" in claimed.body["errors"]
        assert api.handle("GET", f"/api/v1/cases/{case_id}").body["status"] == "dispatched"
        # Without `from`, the station answers as itself.
        taken = api.handle("POST", path, json.dumps({"status": "accepted"}).encode(), station)
        assert taken.status == 202, taken.body
        assert api.handle("GET", f"/api/v1/cases/{case_id}").body["status"] == "accepted"
    finally:
        gridflow.stop()


def test_a_rotated_key_works_beside_the_old_one_for_the_grace_and_alone_after(gridflow):
    api = SignedApi(gridflow)
    made = api.handle("POST", "/api/v1/admin/keys", json.dumps({"holder": "environment"}).encode())
    old_id, old_token = made.body["key"]["credential_id"], made.body["token"]
    rotated = api.handle(
        "POST", f"/api/v1/admin/keys/{old_id}/rotate", json.dumps({"grace_hours": 1}).encode()
    )
    assert rotated.status == 201, rotated.body
    new_token = rotated.body["token"]
    assert rotated.body["key"]["holder"] == "environment" and new_token != old_token
    store = gridflow.identities()
    assert store.resolve(old_token) is not None and store.resolve(new_token) is not None
    # Without grace the old key stops at once.
    again = api.handle(
        "POST",
        f"/api/v1/admin/keys/{rotated.body['key']['credential_id']}/rotate",
        json.dumps({"grace_hours": 0}).encode(),
    )
    assert store.resolve(new_token) is None and store.resolve(again.body["token"]) is not None
    missing = api.handle("POST", "/api/v1/admin/keys/k-000000000000/rotate", b"{}")
    assert missing.status == 404


def test_whole_reporters_for_the_command_center_masked_for_a_department(gridflow):
    api = SignedApi(gridflow)
    body = {
        "channel": "hotline",
        "description": "一户民房内存放大量医疗废弃物",
        "category": "event.medical_waste",
        "location": {"lat": 28.05, "lon": 120.635},
        "reporter": {"name": "庄思思", "phone": "13866000001"},
    }
    case_id = api.handle("POST", "/api/v1/reports", json.dumps(body).encode()).body["case_id"]
    store = gridflow.identities()
    j = gridflow.store.active()[1]
    cc = store.create_user(j, "duty-officer", "command_center")
    _, cc_token = store.issue(BEARER, label="t", user_id=cc["user_id"])
    street = store.create_user(j, "tengqiao", "street", scope=TENGQIAO)
    _, street_token = store.issue(BEARER, label="t", user_id=street["user_id"])
    path = f"/api/v1/cases/{case_id}"
    whole = api.handle("GET", path, headers=bearer(cc_token)).body
    masked = api.handle("GET", path, headers=bearer(street_token)).body
    assert whole["reports"][0]["reporter"] == body["reporter"]
    assert "13866000001" not in json.dumps(masked, ensure_ascii=False)
    assert "庄思思" not in json.dumps(masked, ensure_ascii=False)


def test_no_log_line_carries_a_token(gridflow):
    from gridflow_common.logging import mask_personal_numbers

    _, token = gridflow.identities().issue(BEARER, label="t", user_id="u-x")
    line = f"GET /api/v1/session/link?token={token} Authorization: Bearer {token}"
    masked = mask_personal_numbers(line)
    assert token not in masked and token[4:12] not in masked
    assert masked.count("gft_***") == 2


def test_ended_sessions_go_a_month_later_and_a_token_never_outlives_its_parent(gridflow, store):
    created = store.create_user(J, "sun", "command_center")
    old, _ = store.issue("session", label="s", user_id=created["user_id"])
    with gridflow.engine.begin() as conn:
        conn.execute(
            sa.update(models.credentials)
            .where(models.credentials.c.credential_id == old["credential_id"])
            .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=31))
        )
    store.issue("session", label="s", user_id=created["user_id"])
    ids = [c["credential_id"] for c in store.credentials(user_id=created["user_id"])]
    assert old["credential_id"] not in ids and len(ids) == 1

    _, short = store.issue(
        BEARER, label="short", user_id=created["user_id"], ttl=dt.timedelta(hours=1)
    )
    answer = gridflow.api().handle(
        "POST", "/api/v1/me/tokens", json.dumps({"expires_in_days": 365}).encode(), bearer(short)
    )
    assert answer.status == 201, answer.body
    expires = dt.datetime.fromisoformat(answer.body["credential"]["expires_at"])
    assert expires <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)


def test_a_write_and_its_audit_line_commit_together_and_a_refusal_is_still_audited(gridflow):
    api = SignedApi(gridflow)
    made = api.handle("POST", "/api/v1/admin/keys", json.dumps({"channel": "hotline"}).encode())
    key = bearer(made.body["token"])
    body = {
        "channel": "hotline",
        "description": "路灯不亮",
        "category": "component.streetlight",
        "location": {"grid_code": "330302001001001"},
    }
    ok = api.api.handle("POST", "/api/v1/reports", json.dumps(body).encode(), key)
    bad = api.api.handle(
        "POST", "/api/v1/reports", json.dumps({**body, "category": "no.such"}).encode(), key
    )
    assert (ok.status, bad.status) == (201, 422)
    lines = [
        e
        for e in gridflow.identities().audit_entries(action="post_report")
        if e["actor"].startswith("key:" + made.body["key"]["credential_id"])
    ]
    # One line each: the accepted report's (written with it), and the refusal's.
    assert sorted((e["outcome"], e["detail"]["status"]) for e in lines) == [
        ("ok", 201),
        ("refused", 422),
    ]


def test_a_revoked_token_is_refused_at_once_though_good_answers_are_remembered(gridflow, store):
    created = store.create_user(J, "qian", "command_center")
    record, token = store.issue(BEARER, label="t", user_id=created["user_id"])
    api = gridflow.api()
    assert api.handle("GET", "/api/v1/admin/clock", headers=bearer(token)).status == 200
    assert store.revoke(record["credential_id"])
    assert api.handle("GET", "/api/v1/admin/clock", headers=bearer(token)).status == 401
    _, token = store.issue(BEARER, label="t", user_id=created["user_id"])
    assert api.handle("GET", "/api/v1/admin/clock", headers=bearer(token)).status == 200
    assert store.disable_user("qian")
    assert api.handle("GET", "/api/v1/admin/clock", headers=bearer(token)).status == 401
