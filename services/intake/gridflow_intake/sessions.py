"""Signing in and out, and what a signed-in user does with their own credentials.

``IntakeApi`` inherits these endpoints; they live here so that api.py stays the routing table and
the case endpoints.

- ``POST /api/v1/session`` (user name and password) starts a browser session;
- ``GET /api/v1/session/link?token=...`` spends a one-time sign-in link (the one ``gridflow run``
  and ``gridflow users create`` print), starts a session and sends the browser on;
- ``DELETE /api/v1/session`` signs out;
- ``GET /api/v1/me``: who the credential in use stands for;
- ``PUT /api/v1/me/password``, ``POST|GET /api/v1/me/tokens``, ``DELETE /api/v1/me/tokens/<id>``:
  a user's password and the bearer tokens of their scripts.

A browser session is two cookies. ``gridflow_session`` holds the secret, HttpOnly, so that no
script, an injected one included, can read it. ``gridflow_csrf`` is readable by Gridflow's own
pages, which copy it into ``X-CSRF-Token`` on every write (access.py checks it): another site can
make the browser send the cookies, never read one. The session is SameSite=Lax (a sign-in link
clicked in a mail client must land signed in), the CSRF cookie Strict; both Path=/, Secure
when Gridflow is reached over https, and last as long as the session (12 hours).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request

from gridflow_common.runtime.unit_of_work import real_now
from gridflow_intake import handlers as h
from gridflow_intake import schemas as s
from gridflow_intake.access import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Access,
    Caller,
    Forbidden,
    csrf_token,
    public_url,
)
from gridflow_intake.identity import BEARER, SESSION, SESSION_TTL, public_user, user_principal

if TYPE_CHECKING:
    from marshmallow import Schema

    from gridflow_intake.api import Answer, Call

# Where a browser goes once a sign-in link has started its session: the board at / comes with a
# later issue; until then, the answer that says who signed in.
AFTER_SIGNIN = "/api/v1/me"
# Endpoints that write their own audit line (``signin``, ``signin_failed``, naming the user): the
# generic line api.py writes for a refusal would only repeat it, without the name.
AUDITS_ITSELF = frozenset({"post_session", "get_session_link"})
WRONG_CREDENTIALS = "wrong user name or password"
BAD_LINK = "this sign-in link is not valid (used, expired or unknown); ask an admin for a new one"
# A user name in the audit log is whatever the caller typed.
AUDIT_NAME_CHARS = 64
# Answers that carry a secret (a token, the CSRF value) are not kept by any cache.
NO_STORE = {"Cache-Control": "no-store"}

_SIGNIN_SCHEMA = s.SignInSchema()
_SIGNIN_LINK_QUERY_SCHEMA = s.SignInLinkQuerySchema()
_PASSWORD_CHANGE_SCHEMA = s.PasswordChangeSchema()
_OWN_TOKEN_CREATE_SCHEMA = s.OwnTokenCreateSchema()


def _answer(status: int, body: Any, **options: Any) -> Answer:
    # api.py imports this module (IntakeApi inherits the endpoints below), so Answer is looked up
    # when an answer is made, by which time both modules are loaded.
    from gridflow_intake.api import Answer

    return Answer(status, body, **options)


def _errors(status: int, field: str, message: str, **options: Any) -> Answer:
    return _answer(status, {"errors": {field: [message]}}, **options)


def session_cookies(token: str | None, secure: bool) -> list[dict[str, Any]]:
    """The two cookies of a session (``token``), or, for None, the two that clear them."""
    common = dict(
        max_age=int(SESSION_TTL.total_seconds()) if token else 0,
        path="/",
        secure=secure,
    )
    # Lax, not Strict, for the session: a sign-in link clicked in a mail client is a cross-site
    # navigation, and a Strict cookie would be withheld from the page it lands on. Writes stay
    # protected: a cross-site POST carries no Lax cookie, and every write also needs the CSRF
    # header, which only Gridflow's own pages can copy from the (Strict) CSRF cookie.
    return [
        dict(key=SESSION_COOKIE, value=token or "", httponly=True, samesite="Lax", **common),
        dict(
            key=CSRF_COOKIE,
            value=csrf_token(token) if token else "",
            httponly=False,
            samesite="Strict",
            **common,
        ),
    ]


def credential_state(credential: dict, now: dt.datetime) -> str:
    """``live``, ``expired`` or ``revoked``, for a credential as IdentityStore lists it."""
    if credential["revoked_at"]:
        return "revoked"
    expires = credential["expires_at"]
    if expires and dt.datetime.fromisoformat(expires) <= now:
        return "expired"
    return "live"


class SessionEndpoints:
    """The session and ``/me`` endpoints of ``IntakeApi``."""

    access: Access

    if TYPE_CHECKING:

        @staticmethod
        def _load(schema: Schema, body: bytes) -> dict: ...

        def _load_query(self, schema: Schema, request: Request) -> dict: ...

    # -- where the brute-force guard plugs in ---------------------------------------------------
    # Every password check (a sign-in, the current password when changing it) goes through these
    # three, so one guard sees every guess at a user's password, whichever door it came through.

    def _signin_refused_for(self, username: str, caller: Caller) -> Answer | None:
        """Before a password of ``username`` is checked: an answer to give instead (429 with
        Retry-After once a user, or the caller's address, has had too many wrong passwords),
        or None to go on. The guard (ratelimit.SignInGuard): ten wrong passwords for one user
        in quick succession, then one try every six seconds; thirty for one address. A right
        password during the wait is refused too, unread: the guesser learns nothing."""
        decision = self.access.signin_guard.check(username, caller.address)
        if decision.allowed:
            return None
        self.access.audit(caller, "signin_slowed", "refused", target=username[:AUDIT_NAME_CHARS])
        return _errors(
            429,
            "credentials",
            f"too many wrong passwords; try again in {decision.retry_after} s",
            headers={"Retry-After": str(decision.retry_after)},
        )

    def _signin_failed(self, username: str, caller: Caller, via: str = "password") -> None:
        """A wrong password was given for ``username`` (who may not exist)."""
        self.access.signin_guard.failed(username, caller.address)
        self.access.audit(
            caller, "signin_failed", "refused", target=username[:AUDIT_NAME_CHARS], via=via
        )

    def _signin_succeeded(self, username: str, caller: Caller, via: str = "password") -> None:
        """``username`` signed in; ``caller`` is already the new session's principal."""
        self.access.signin_guard.succeeded(username)
        credential = caller.credential or {}
        self.access.audit(
            caller,
            "signin",
            "ok",
            target=username[:AUDIT_NAME_CHARS],
            via=via,
            credential_id=credential.get("credential_id"),
        )

    # -- signing in and out ----------------------------------------------------------------------

    def post_session(self, call: Call) -> Answer:
        data = self._load(_SIGNIN_SCHEMA, call.body)
        username = data["username"]
        refused = self._signin_refused_for(username, call.caller)
        if refused is not None:
            return refused
        # The same work and the same answer for a wrong password, an unknown or disabled user
        # and a user without a password: nobody learns which user names exist by signing in.
        user = self.access.store.check_password(username, data["password"])
        if user is None:
            self._signin_failed(username, call.caller)
            return _errors(
                401, "credentials", WRONG_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"}
            )
        return self._start_session(call, user, via="password", status=200)

    def get_session_link(self, call: Call) -> Answer:
        token = self._load_query(_SIGNIN_LINK_QUERY_SCHEMA, call.request)["token"]
        # Spent in one conditional update: of two requests with one link, one gets the user.
        user = self.access.store.redeem_signin(token)
        if user is None:
            self.access.audit(call.caller, "signin_failed", "refused", via="link")
            return _errors(401, "token", BAD_LINK, headers={"WWW-Authenticate": "Bearer"})
        return self._start_session(call, user, via="link", status=303)

    def _start_session(self, call: Call, user: dict, *, via: str, status: int) -> Answer:
        record, token = self.access.store.issue(
            SESSION,
            label=f"{via} sign-in from {call.caller.address}",
            user_id=user["user_id"],
            ttl=SESSION_TTL,
        )
        principal = user_principal(user, record["credential_id"])
        self._signin_succeeded(
            user["username"], Caller(principal, call.caller.address, record), via=via
        )
        headers = dict(NO_STORE)
        if status == 303:
            headers["Location"] = AFTER_SIGNIN
        return _answer(
            status,
            {
                "user": public_user(user),
                "csrf_token": csrf_token(token),
                "expires_at": record["expires_at"],
            },
            headers=headers,
            cookies=session_cookies(token, self._over_https(call.request)),
        )

    def delete_session(self, call: Call) -> Answer:
        credential = call.caller.credential
        assert credential is not None
        if not call.caller.via_cookie:
            # A bearer token is not ended by signing out: a script's token is revoked by its id.
            return _errors(
                400,
                "session",
                "this request carries no session cookie; a bearer token is revoked with "
                "DELETE /api/v1/me/tokens/{credential_id}",
            )
        self.access.store.revoke(credential["credential_id"])
        return _answer(
            200,
            {"signed_out": True, "credential_id": credential["credential_id"]},
            cookies=session_cookies(None, self._over_https(call.request)),
        )

    def _over_https(self, request: Request) -> bool:
        """Is Gridflow reached over https (then its cookies are Secure)? GRIDFLOW_PUBLIC_URL
        says so when set, else the request's own scheme, or the X-Forwarded-Proto a trusted proxy
        sets (a TLS-terminating proxy in front); a client's own header is not believed."""
        if public_url(request.host_url).startswith("https://"):
            return True
        if self.access.from_trusted_proxy(request):
            forwarded = request.headers.get("X-Forwarded-Proto", "")
            return forwarded.split(",")[-1].strip().lower() == "https"
        return False

    # -- who am I --------------------------------------------------------------------------------

    def get_me(self, call: Call) -> Answer:
        principal, credential = call.principal, call.caller.credential
        assert principal is not None and credential is not None
        expires = credential["expires_at"]
        me: dict[str, Any] = {
            "kind": principal.kind,
            "name": principal.name,
            "role": principal.role,
            "scope": principal.scope,
            "channel": principal.channel,
            "credential_id": principal.credential_id,
            "credential_kind": credential["kind"],
            "expires_at": expires.isoformat() if expires else None,
        }
        if principal.is_user:
            user = self.access.store.user(principal.name)
            if user is not None:
                me["display_name"] = user["display_name"]
                # A user who came in by a sign-in link has none yet: the page asks for one.
                me["has_password"] = user["password_hash"] is not None
        if call.caller.via_cookie:
            me["csrf_token"] = csrf_token(call.request.cookies[SESSION_COOKIE])
        return _answer(200, me, headers=dict(NO_STORE))

    def put_my_password(self, call: Call) -> Answer:
        data = self._load(_PASSWORD_CHANGE_SCHEMA, call.body)
        principal, credential = call.principal, call.caller.credential
        assert principal is not None and credential is not None
        store = self.access.store
        user = store.user(principal.name)
        if user is None:  # removed since the credential was resolved
            raise h.Rejected(404, {"username": ["no such user"]})
        if user["password_hash"] is not None:
            # A stolen session or token must not be enough to take the account over: the
            # current password is asked, and a wrong one counts as a wrong sign-in.
            current = data["current_password"]
            if current is None:
                raise h.Rejected(
                    400, {"current_password": ["give your current password to change it"]}
                )
            refused = self._signin_refused_for(principal.name, call.caller)
            if refused is not None:
                return refused
            if store.check_password(principal.name, current) is None:
                self._signin_failed(principal.name, call.caller, via="password_change")
                raise Forbidden("this is not your current password", field="current_password")
        store.set_password(principal.id, data["password"])
        # Whoever else is signed in as this user (a browser left open, or someone who should not
        # be) is signed out; the session in use and the user's script tokens stay.
        now = real_now()
        ended = [
            c["credential_id"]
            for c in store.credentials(kinds=(SESSION,), user_id=principal.id)
            if c["credential_id"] != credential["credential_id"]
            and credential_state(c, now) == "live"
            and store.revoke(c["credential_id"])
        ]
        return _answer(200, {"password_set": True, "sessions_ended": len(ended)})

    # -- a user's own tokens ---------------------------------------------------------------------

    def post_my_token(self, call: Call) -> Answer:
        data = self._load(_OWN_TOKEN_CREATE_SCHEMA, call.body)
        principal = call.principal
        assert principal is not None
        ttl = dt.timedelta(days=data["expires_in_days"])
        # A token made with a token never outlives the one it was made with: a stolen
        # short-lived token cannot be turned into a long-lived one.
        parent_expiry = (call.caller.credential or {}).get("expires_at")
        if parent_expiry is not None and (call.caller.credential or {}).get("kind") == BEARER:
            ttl = min(ttl, max(parent_expiry - real_now(), dt.timedelta(0)))
        record, token = self.access.store.issue(
            BEARER,
            label=data["label"] or f"{principal.name}'s script token",
            user_id=principal.id,
            ttl=ttl,
        )
        return _answer(201, {"token": token, "credential": record}, headers=dict(NO_STORE))

    def get_my_tokens(self, call: Call) -> Answer:
        """The caller's sessions and bearer tokens, live, expired and revoked, never a secret;
        ``current`` marks the one this request came with."""
        principal, credential = call.principal, call.caller.credential
        assert principal is not None and credential is not None
        now = real_now()
        listed = [
            {
                **c,
                "state": credential_state(c, now),
                "current": c["credential_id"] == credential["credential_id"],
            }
            for c in self.access.store.credentials(kinds=(SESSION, BEARER), user_id=principal.id)
        ]
        return _answer(200, {"credentials": listed})

    def delete_my_token(self, call: Call, credential_id: str) -> Answer:
        principal = call.principal
        assert principal is not None
        # Another user's credential is answered as one that does not exist: nobody learns
        # which ids exist by trying to revoke them.
        if not self.access.store.revoke(credential_id, user_id=principal.id):
            raise h.Rejected(404, {"credential_id": [f"no live credential {credential_id!r}"]})
        return _answer(200, {"credential_id": credential_id, "revoked": True})
