"""Signing in and out, who am I, a user's password and own tokens (gridflow_intake/sessions.py).

In process first (the embedded default's WSGI app through werkzeug's test client, which keeps
cookies like a browser), then over real HTTP against `gridflow run` on SQLite and on PostgreSQL,
driven with httpx as a browser and an attacker would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from werkzeug.test import Client

from gridflow_common import contracts as c
from gridflow_intake.access import CSRF_COOKIE, SESSION_COOKIE, Access, csrf_token, parse_proxies
from gridflow_intake.api import Answer, IntakeApi
from gridflow_intake.identity import RESOLVE_CACHE_SECONDS
from gridflow_intake.models import audit, credentials
from gridflow_intake.sessions import AFTER_SIGNIN
from tests.conftest import fresh_database
from tests.unit.running_server import RunningGridflow, running_gridflow

PASSWORD = "correct horse battery staple"
SESSION_ROUTES = [
    ("POST", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/session/link"),
    ("GET", "/api/v1/me"),
    ("PUT", "/api/v1/me/password"),
    ("POST", "/api/v1/me/tokens"),
    ("GET", "/api/v1/me/tokens"),
    ("DELETE", "/api/v1/me/tokens/k-000000000000"),
]


def _name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# -- in process ------------------------------------------------------------------------------------


@pytest.fixture
def web(gridflow):
    """A browser on the embedded default's WSGI app: keeps cookies between requests."""
    return Client(gridflow.wsgi_app())


def _admin(gridflow) -> dict[str, str]:
    return {"Authorization": f"Bearer {gridflow.admin_token}"}


def _make_user(gridflow, username: str, role: str = "command_center", **fields) -> dict:
    answer = Client(gridflow.wsgi_app()).post(
        "/api/v1/admin/users",
        json={"username": username, "role": role, **fields},
        headers=_admin(gridflow),
    )
    assert answer.status_code == 201, answer.json
    return answer.json


def _sign_in(web, username: str, password: str = PASSWORD):
    return web.post("/api/v1/session", json={"username": username, "password": password})


def _csrf(web) -> dict[str, str]:
    return {"X-CSRF-Token": web.get_cookie(CSRF_COOKIE).value}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _audit_rows(gridflow) -> list[dict]:
    with gridflow.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(audit).order_by(audit.c.id))]


def test_signing_in_sets_an_httponly_lax_session_cookie_and_a_readable_strict_csrf_cookie(
    gridflow, web
):
    _make_user(gridflow, "alice", password=PASSWORD)
    answer = _sign_in(web, "alice")
    assert answer.status_code == 200
    assert answer.json["user"]["username"] == "alice"
    assert "password_hash" not in answer.json["user"]
    assert answer.headers["Cache-Control"] == "no-store"
    session, csrf = web.get_cookie(SESSION_COOKIE), web.get_cookie(CSRF_COOKIE)
    assert session.value.startswith("gfs_") and session.http_only and not session.secure
    assert not csrf.http_only and csrf.value == csrf_token(session.value)
    assert answer.json["csrf_token"] == csrf.value
    # Lax: a sign-in link clicked in a mail client lands signed in; writes need the CSRF header.
    assert (session.same_site, csrf.same_site) == ("Lax", "Strict")
    for cookie in (session, csrf):
        assert cookie.path == "/" and cookie.max_age == 12 * 3600
    me = web.get("/api/v1/me").json
    assert (me["kind"], me["name"], me["role"], me["credential_kind"]) == (
        "user",
        "alice",
        "command_center",
        "session",
    )
    assert me["csrf_token"] == csrf.value and me["has_password"] is True


def test_cookies_are_secure_when_the_public_url_is_https(gridflow, web, monkeypatch):
    _make_user(gridflow, "alice", password=PASSWORD)
    monkeypatch.setenv("GRIDFLOW_PUBLIC_URL", "https://gridflow.example.gov.cn")
    answer = _sign_in(web, "alice")
    set_cookies = answer.headers.getlist("Set-Cookie")
    assert len(set_cookies) == 2 and all("; Secure" in line for line in set_cookies)


def test_a_trusted_proxys_forwarded_https_makes_the_cookies_secure_and_a_clients_does_not(
    gridflow,
):
    _make_user(gridflow, "alice", password=PASSWORD)
    proxy = {"REMOTE_ADDR": "10.0.0.5"}  # the request comes from this peer
    https = {"X-Forwarded-Proto": "https"}

    def set_cookies() -> list[str]:
        answer = Client(gridflow.wsgi_app()).post(
            "/api/v1/session",
            json={"username": "alice", "password": PASSWORD},
            headers=https,
            environ_base=proxy,
        )
        assert answer.status_code == 200
        return answer.headers.getlist("Set-Cookie")

    # With no trusted proxies, a peer saying the browser came over https is not believed.
    assert not any("Secure" in line for line in set_cookies())
    Access.for_runtime(gridflow.runtimes[c.INTAKE]).trusted_proxies = parse_proxies("10.0.0.0/8")
    secure = set_cookies()
    assert len(secure) == 2 and all("; Secure" in line for line in secure)


def test_sign_in_and_its_refusal_are_audited_with_the_name_and_never_the_password(gridflow, web):
    _make_user(gridflow, "alice", password=PASSWORD)
    assert _sign_in(web, "alice", "not the password at all").status_code == 401
    assert _sign_in(web, "nobody-here", PASSWORD).status_code == 401
    assert _sign_in(web, "alice").status_code == 200
    rows = [r for r in _audit_rows(gridflow) if r["action"].startswith("signin")]
    assert [(r["actor"], r["action"], r["outcome"], r["target"]) for r in rows] == [
        ("anonymous", "signin_failed", "refused", "alice"),
        ("anonymous", "signin_failed", "refused", "nobody-here"),
        ("user:alice", "signin", "ok", "alice"),
    ]
    assert rows[-1]["detail"]["credential_id"] == web.get("/api/v1/me").json["credential_id"]
    # One line per sign-in, not a second generic one for the refusal.
    assert not [r for r in _audit_rows(gridflow) if r["action"] == "post_session"]
    text = json.dumps([{k: str(v) for k, v in r.items()} for r in _audit_rows(gridflow)])
    assert PASSWORD not in text and "not the password at all" not in text


def test_the_brute_force_guard_plugs_in_before_any_password_is_checked(gridflow, web, monkeypatch):
    """The spot the lead's guard answers from: whatever it answers is the answer, at sign-in
    and at a password change alike, even for the right password."""
    _make_user(gridflow, "alice", password=PASSWORD)
    assert _sign_in(web, "alice").status_code == 200
    asked = []

    def slow_down(self, username, caller):
        asked.append(username)
        return Answer(429, {"errors": {"username": ["slow down"]}}, headers={"Retry-After": "60"})

    monkeypatch.setattr(IntakeApi, "_signin_refused_for", slow_down)
    refused = _sign_in(Client(gridflow.wsgi_app()), "alice")
    assert (refused.status_code, refused.headers["Retry-After"]) == (429, "60")
    change = web.put(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "password": "another long password"},
        headers=_csrf(web),
    )
    assert change.status_code == 429
    assert asked == ["alice", "alice"]


def test_me_answers_for_a_channel_key_and_a_holder_credential(gridflow, web):
    admin = _admin(gridflow)
    channel = web.post("/api/v1/admin/keys", json={"channel": "hotline"}, headers=admin).json
    holder = web.post("/api/v1/admin/keys", json={"holder": "environment"}, headers=admin).json
    me = web.get("/api/v1/me", headers={"X-Api-Key": channel["token"]}).json
    assert (me["kind"], me["channel"], me["credential_id"]) == (
        "channel_key",
        "hotline",
        channel["key"]["credential_id"],
    )
    assert "csrf_token" not in me
    me = web.get("/api/v1/me", headers=_bearer(holder["token"])).json
    assert (me["kind"], me["scope"]) == ("holder_key", "environment")
    # A channel key asks who it is and nothing else of a user's.
    assert web.get("/api/v1/me/tokens", headers=_bearer(channel["token"])).status_code == 403


@pytest.mark.parametrize("method,path", SESSION_ROUTES)
def test_session_routes_without_a_credential(web, method, path):
    answer = web.open(path, method=method)
    if path == "/api/v1/session" and method == "POST":
        assert answer.status_code == 400 and "_body" in answer.json["errors"]
    elif path == "/api/v1/session/link":
        assert answer.status_code == 400 and "token" in answer.json["errors"]
    else:
        assert answer.status_code == 401 and "authorization" in answer.json["errors"]


def test_a_new_user_signs_in_by_link_and_sets_a_password_without_a_current_one(gridflow, web):
    link = _make_user(gridflow, "bob", role="grid_worker", scope="330302001001001")["signin_link"]
    first = web.get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert (first.status_code, first.headers["Location"]) == (303, AFTER_SIGNIN)
    assert web.get(AFTER_SIGNIN).json["has_password"] is False
    too_short = web.put("/api/v1/me/password", json={"password": "short"}, headers=_csrf(web))
    assert too_short.status_code == 400 and "password" in too_short.json["errors"]
    done = web.put("/api/v1/me/password", json={"password": PASSWORD}, headers=_csrf(web))
    assert done.status_code == 200, done.json
    assert _sign_in(Client(gridflow.wsgi_app()), "bob").status_code == 200


def test_changing_a_password_asks_the_current_one_and_signs_out_the_other_sessions(gridflow, web):
    _make_user(gridflow, "alice", password=PASSWORD)
    other = Client(gridflow.wsgi_app())
    assert _sign_in(other, "alice").status_code == 200
    assert _sign_in(web, "alice").status_code == 200
    token = web.post("/api/v1/me/tokens", json={}, headers=_csrf(web)).json["token"]
    new = "a brand new long password"

    missing = web.put("/api/v1/me/password", json={"password": new}, headers=_csrf(web))
    assert missing.status_code == 400 and "current_password" in missing.json["errors"]
    wrong = web.put(
        "/api/v1/me/password",
        json={"current_password": "not my password", "password": new},
        headers=_csrf(web),
    )
    assert wrong.status_code == 403 and "current_password" in wrong.json["errors"]
    failed = [r for r in _audit_rows(gridflow) if r["action"] == "signin_failed"]
    assert [(r["actor"], r["detail"]["via"]) for r in failed] == [("user:alice", "password_change")]

    done = web.put(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "password": new},
        headers=_csrf(web),
    )
    assert done.json == {"password_set": True, "sessions_ended": 1}
    assert other.get("/api/v1/me").status_code == 401
    assert web.get("/api/v1/me").status_code == 200
    assert web.get("/api/v1/me", headers=_bearer(token)).status_code == 200
    fresh = Client(gridflow.wsgi_app())
    assert _sign_in(fresh, "alice", PASSWORD).status_code == 401
    assert _sign_in(fresh, "alice", new).status_code == 200


def test_a_users_own_tokens_are_made_listed_and_revoked_only_by_them(gridflow, web):
    _make_user(gridflow, "alice", password=PASSWORD)
    _make_user(gridflow, "carol", password=PASSWORD)
    assert _sign_in(web, "alice").status_code == 200
    made = web.post("/api/v1/me/tokens", json={"label": "nightly export"}, headers=_csrf(web))
    assert made.status_code == 201 and made.headers["Cache-Control"] == "no-store"
    token, record = made.json["token"], made.json["credential"]
    assert token.startswith("gft_") and record["label"] == "nightly export"
    lifetime = dt.datetime.fromisoformat(record["expires_at"]) - dt.datetime.fromisoformat(
        record["created_at"]
    )
    assert lifetime == dt.timedelta(days=90)
    for days in (0, 366, True, "30"):
        refused = web.post("/api/v1/me/tokens", json={"expires_in_days": days}, headers=_csrf(web))
        assert refused.status_code == 400 and "expires_in_days" in refused.json["errors"]

    listed = web.get("/api/v1/me/tokens").json["credentials"]
    assert {(x["kind"], x["state"], x["current"]) for x in listed} == {
        ("session", "live", True),
        ("bearer", "live", False),
    }
    assert token not in json.dumps(listed) and "token_hash" not in json.dumps(listed)

    carol = Client(gridflow.wsgi_app())
    assert _sign_in(carol, "carol").status_code == 200
    # Carol sees none of Alice's, and cannot revoke one: the same 404 as for no such id.
    assert record["credential_id"] not in json.dumps(carol.get("/api/v1/me/tokens").json)
    theirs = carol.delete(f"/api/v1/me/tokens/{record['credential_id']}", headers=_csrf(carol))
    unknown = carol.delete("/api/v1/me/tokens/k-000000000000", headers=_csrf(carol))
    assert theirs.status_code == unknown.status_code == 404
    assert web.get("/api/v1/me", headers=_bearer(token)).status_code == 200

    gone = web.delete(f"/api/v1/me/tokens/{record['credential_id']}", headers=_csrf(web))
    assert gone.status_code == 200
    assert web.get("/api/v1/me", headers=_bearer(token)).status_code == 401
    states = {
        x["credential_id"]: x["state"] for x in web.get("/api/v1/me/tokens").json["credentials"]
    }
    assert states[record["credential_id"]] == "revoked"


def test_signing_out_with_a_bearer_token_is_refused_and_revokes_nothing(gridflow, web):
    answer = web.delete("/api/v1/session", headers=_admin(gridflow))
    assert answer.status_code == 400 and "session" in answer.json["errors"]
    assert web.get("/api/v1/me", headers=_admin(gridflow)).status_code == 200


# -- over HTTP, against `gridflow run` --------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory, database_server_url):
    folder = tmp_path_factory.mktemp(f"sessions-{request.param}")
    if request.param == "sqlite":
        with running_gridflow(folder) as running:
            yield running
        return
    with fresh_database(database_server_url) as url, running_gridflow(folder, url) as running:
        yield running


def _user_with_password(server: RunningGridflow, **fields) -> str:
    username = _name()
    server.create_user(username, password=PASSWORD, **fields)
    return username


@contextlib.contextmanager
def _browser(server: RunningGridflow, username: str) -> Iterator[httpx.Client]:
    """A browser signed in as ``username``: its cookie jar holds the session."""
    with server.client() as client:
        answer = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        yield client


def _http_csrf(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies[CSRF_COOKIE]}


@contextlib.contextmanager
def _cookie_only(server: RunningGridflow, session: str) -> Iterator[httpx.Client]:
    """A client that sends exactly this session cookie (and its CSRF value) and nothing else."""
    with server.client() as client:
        client.cookies.set(SESSION_COOKIE, session)
        client.cookies.set(CSRF_COOKIE, csrf_token(session))
        yield client


def test_http_a_browser_session_reads_and_writes_only_with_the_csrf_header(server):
    username = _user_with_password(server)
    with _browser(server, username) as browser:
        me = browser.get("/api/v1/me")
        assert me.status_code == 200 and me.json()["name"] == username
        assert me.json()["csrf_token"] == browser.cookies[CSRF_COOKIE]
        without = browser.post("/api/v1/me/tokens", json={})
        assert without.status_code == 403 and "csrf" in without.json()["errors"]
        forged = browser.post("/api/v1/me/tokens", json={}, headers={"X-CSRF-Token": "0" * 64})
        assert forged.status_code == 403
        # The CSRF value of another session is no good either.
        with _browser(server, username) as other:
            assert (
                browser.post("/api/v1/me/tokens", json={}, headers=_http_csrf(other)).status_code
                == 403
            )
        made = browser.post("/api/v1/me/tokens", json={}, headers=_http_csrf(browser))
        assert made.status_code == 201
        # None of the refused writes made anything.
        kinds = [x["kind"] for x in browser.get("/api/v1/me/tokens").json()["credentials"]]
        assert kinds.count("bearer") == 1


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"), id="last-character"),
        pytest.param(lambda s: "gfs_" + "x" * 43, id="made-up"),
        pytest.param(lambda s: s.replace("gfs_", "gft_"), id="as-a-bearer-token"),
        pytest.param(lambda s: s + "=", id="padded"),
        pytest.param(lambda s: "admin", id="garbage"),
    ],
)
def test_http_a_forged_or_altered_session_cookie_is_401_naming_no_secret(server, alter):
    username = _user_with_password(server)
    with _browser(server, username) as browser:
        real = browser.cookies[SESSION_COOKIE]
    forged = alter(real)
    with _cookie_only(server, forged) as client:
        answer = client.get("/api/v1/me")
    assert answer.status_code == 401
    assert forged not in answer.text and real not in answer.text


def test_http_a_signed_out_session_is_401_and_its_cookies_are_cleared(server):
    username = _user_with_password(server)
    with _browser(server, username) as browser:
        session = browser.cookies[SESSION_COOKIE]
        assert browser.delete("/api/v1/session").status_code == 403  # no CSRF header
        assert browser.get("/api/v1/me").status_code == 200
        out = browser.delete("/api/v1/session", headers=_http_csrf(browser))
        assert out.status_code == 200
        cleared = out.headers.get_list("set-cookie")
        assert sorted(line.split("=")[0] for line in cleared) == [CSRF_COOKIE, SESSION_COOKIE]
        assert all("Max-Age=0" in line for line in cleared)
        assert SESSION_COOKIE not in browser.cookies
    with _cookie_only(server, session) as replayed:
        assert replayed.get("/api/v1/me").status_code == 401
        assert replayed.delete("/api/v1/session", headers=_http_csrf(replayed)).status_code == 401


def test_http_an_expired_session_is_401(server):
    username = _user_with_password(server)
    with _browser(server, username) as browser:
        credential_id = browser.get("/api/v1/me").json()["credential_id"]
        engine = server.engine()
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.update(credentials)
                    .where(credentials.c.credential_id == credential_id)
                    .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1))
                )
        finally:
            engine.dispose()
        # The server remembers a good answer for RESOLVE_CACHE_SECONDS; an expiry it knows is
        # checked on every use, one written behind its back (as here) is seen after that.
        time.sleep(RESOLVE_CACHE_SECONDS + 0.1)  # bounded: the server's memory of the token
        answer = browser.get("/api/v1/me")
    assert answer.status_code == 401 and "authorization" in answer.json()["errors"]


def test_http_a_revoked_bearer_token_is_401(server):
    username = _user_with_password(server)
    with _browser(server, username) as browser:
        made = browser.post(
            "/api/v1/me/tokens", json={"label": "cron"}, headers=_http_csrf(browser)
        )
        token, credential_id = made.json()["token"], made.json()["credential"]["credential_id"]
        assert httpx.get(f"{server.url}/api/v1/me", headers=_bearer(token)).status_code == 200
        revoked = browser.delete(f"/api/v1/me/tokens/{credential_id}", headers=_http_csrf(browser))
        assert revoked.status_code == 200
    answer = httpx.get(f"{server.url}/api/v1/me", headers=_bearer(token))
    assert answer.status_code == 401 and token not in answer.text


def test_http_a_disabled_users_token_and_session_are_401(server):
    username = _user_with_password(server)
    with _browser(server, username) as browser:
        token = browser.post("/api/v1/me/tokens", json={}, headers=_http_csrf(browser)).json()[
            "token"
        ]
        disabled = httpx.post(
            f"{server.url}/api/v1/admin/users/{username}/disable", headers=server.admin
        )
        assert disabled.status_code == 200
        assert browser.get("/api/v1/me").status_code == 401
    assert httpx.get(f"{server.url}/api/v1/me", headers=_bearer(token)).status_code == 401


def test_http_a_signin_link_starts_one_session_once(server):
    username = _name()
    link = server.create_user(username)["signin_link"]
    token = link.split("token=")[1]
    with server.client() as browser:
        first = browser.get(link)
        assert first.status_code == 303 and first.headers["location"] == AFTER_SIGNIN
        landed = browser.get(first.headers["location"])
        assert landed.status_code == 200
        assert (landed.json()["name"], landed.json()["has_password"]) == (username, False)
    with server.client() as again:
        second = again.get(link)
        assert second.status_code == 401 and "token" in second.json()["errors"]
        assert token not in second.text and SESSION_COOKIE not in again.cookies
    rows = _audit(server, target=username)
    assert [(r["action"], r["outcome"], r["detail"]["via"]) for r in rows] == [
        ("signin", "ok", "link")
    ]


def _audit(server: RunningGridflow, target: str) -> list[dict]:
    engine = server.engine()
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(audit).where(audit.c.target == target).order_by(audit.c.id)
            )
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


def test_http_a_wrong_password_an_unknown_disabled_or_passwordless_user_answer_alike(server):
    with_password = _user_with_password(server)
    disabled = _user_with_password(server)
    httpx.post(f"{server.url}/api/v1/admin/users/{disabled}/disable", headers=server.admin)
    passwordless = _name()
    server.create_user(passwordless)
    attempts = [
        (with_password, "wrong password, long enough"),
        (_name(), "wrong password, long enough"),
        (disabled, PASSWORD),
        (passwordless, "wrong password, long enough"),
        ("not a valid name!", PASSWORD),
    ]
    answers = []
    for username, password in attempts:
        answer = httpx.post(
            f"{server.url}/api/v1/session", json={"username": username, "password": password}
        )
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "date"}
        answers.append((answer.status_code, answer.content, headers))
    assert answers[0][0] == 401
    assert all(a == answers[0] for a in answers), answers


def _nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "body,status,field",
    [
        pytest.param({"username": "ali\u0000ce", "password": PASSWORD}, 400, "username", id="nul"),
        pytest.param({"username": "alice", "password": "x" * 60_000}, 400, "password", id="60kb"),
        # Past the body limit (64 KiB): refused from its Content-Length before a byte is read.
        pytest.param({"username": "alice", "password": "x" * 100_000}, 413, "_body", id="100kb"),
        pytest.param({"username": "a" * 10_000, "password": PASSWORD}, 400, "username", id="long"),
        pytest.param({"username": "alice", "password": _nested(20)}, 400, "password", id="deep"),
        pytest.param({"username": "alice", "password": {"$ne": ""}}, 400, "password", id="obj"),
        pytest.param({"username": ["admin"], "password": PASSWORD}, 400, "username", id="list"),
        pytest.param({"username": "alice"}, 400, "password", id="no-password"),
        pytest.param(
            {"username": "alice", "password": PASSWORD, "role": "admin"}, 400, "role", id="extra"
        ),
        pytest.param(
            b'{"username": "alice", "password": "\\ud800xx"}', 400, "password", id="surrogate"
        ),
        pytest.param(b"[" * 5000 + b"]" * 5000, 400, "_body", id="5000-deep"),
        pytest.param(b"username=alice&password=x", 415, "content_type", id="form"),
    ],
)
def test_http_hostile_sign_in_bodies_are_refused_naming_the_field(server, body, status, field):
    if isinstance(body, bytes):
        kind = (
            "application/x-www-form-urlencoded" if body.startswith(b"user") else "application/json"
        )
        answer = httpx.post(
            f"{server.url}/api/v1/session", content=body, headers={"Content-Type": kind}
        )
    else:
        answer = httpx.post(f"{server.url}/api/v1/session", json=body)
    assert answer.status_code == status, answer.text
    assert field in answer.json()["errors"]


def test_http_twenty_parallel_sign_ins_with_one_link_make_exactly_one_session(server):
    username = _name()
    made = server.create_user(username)
    link, user_id = made["signin_link"], made["user"]["user_id"]
    start = threading.Barrier(20)

    def follow() -> int:
        start.wait()
        return httpx.get(link, timeout=30).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(lambda _: follow(), range(20)))
    assert statuses == [303] + [401] * 19
    engine = server.engine()
    try:
        with engine.connect() as conn:
            sessions = conn.execute(
                sa.select(sa.func.count())
                .select_from(credentials)
                .where(credentials.c.user_id == user_id, credentials.c.kind == "session")
            ).scalar()
    finally:
        engine.dispose()
    assert sessions == 1
