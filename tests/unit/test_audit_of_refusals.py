"""A request refused at the door (a credential that is not good, a role that may not call the
route, a browser write without the CSRF header) is audited with who was refused and from where:
the refusal comes before the request has a caller, and it was once written as "anonymous" from
"unknown", which told an operator nothing about whose session another site's page rode on."""

from __future__ import annotations

import sqlalchemy as sa
from werkzeug.test import Client

from gridflow_intake.access import CSRF_COOKIE
from gridflow_intake.models import audit, credentials

PASSWORD = "correct horse battery staple"
# The client's address as the server sees it (REMOTE_ADDR), one no other request uses.
ADDRESS = "203.0.113.9"


class _Client(Client):
    """A werkzeug client whose every request comes from ADDRESS."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("environ_base", {"REMOTE_ADDR": ADDRESS})
        return super().open(*args, **kwargs)


def _client(gridflow) -> Client:
    return _Client(gridflow.wsgi_app())


def _refusals(gridflow) -> list[tuple]:
    with gridflow.engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit.c.actor, audit.c.action, audit.c.address, audit.c.detail)
            .where(audit.c.outcome == "refused")
            .order_by(audit.c.id)
        ).all()
    return [(r.actor, r.action, r.address, r.detail["status"]) for r in rows]


def _bearer_count(gridflow) -> int:
    with gridflow.engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(credentials.c.kind == "bearer")
        ).scalar_one()


def test_refusals_at_the_door_name_the_refused_caller_and_their_address(gridflow):
    admin = {"Authorization": f"Bearer {gridflow.admin_token}"}
    made = _client(gridflow).post(
        "/api/v1/admin/users",
        json={"username": "alice", "role": "command_center", "password": PASSWORD},
        headers=admin,
    )
    assert made.status_code == 201, made.json
    tokens_before = _bearer_count(gridflow)

    browser = _client(gridflow)
    signed_in = browser.post("/api/v1/session", json={"username": "alice", "password": PASSWORD})
    assert signed_in.status_code == 200
    # Another site's page makes alice's browser write: the cookie comes, the header does not.
    no_header = browser.post("/api/v1/me/tokens", json={"label": "planted"})
    assert no_header.status_code == 403 and "csrf" in no_header.json["errors"]
    # alice may not call an admin route.
    not_admin = browser.get("/api/v1/admin/users")
    assert not_admin.status_code == 403
    # Someone guessing tokens.
    guessed = _client(gridflow).get("/api/v1/me", headers={"Authorization": "Bearer gft_guess"})
    assert guessed.status_code == 401

    assert _refusals(gridflow) == [
        ("user:alice", "post_my_token", ADDRESS, 403),
        ("user:alice", "get_users", ADDRESS, 403),
        ("anonymous", "get_me", ADDRESS, 401),
    ]
    assert _bearer_count(gridflow) == tokens_before
    # With the header the same write goes through (the refusal above was the header's doing).
    csrf = browser.get_cookie(CSRF_COOKIE)
    assert csrf is not None
    wrote = browser.post(
        "/api/v1/me/tokens", json={"label": "mine"}, headers={"X-CSRF-Token": csrf.value}
    )
    assert wrote.status_code == 201
    assert _bearer_count(gridflow) == tokens_before + 1
