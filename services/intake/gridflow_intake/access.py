"""Who is calling: credentials read from a request, the client's address, and the audit trail.

The HTTP API asks ``Access.authenticate`` once per request. A request may carry

- ``Authorization: Bearer TOKEN``: a user's bearer token, a channel's key or a department's or
  unit's credential (scripts, department systems, channel clients);
- ``X-Api-Key: TOKEN``: the same, for clients that cannot set Authorization;
- the ``gridflow_session`` cookie: a browser's session, for which every write must also carry the
  ``X-CSRF-Token`` header with the value of the ``gridflow_csrf`` cookie (double submit: a page of
  another site can make the browser send the cookie, never read it to copy it into the header).

A credential that is given and is not good is refused (401), never ignored: a caller who meant
to be someone must not silently become anonymous.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request

from gridflow_common.domain import access as a
from gridflow_common.logging import get_logger
from gridflow_intake.identity import BEARER, PREFIXES, SESSION, IdentityStore

log = get_logger(__name__)

SESSION_COOKIE = "gridflow_session"
CSRF_COOKIE = "gridflow_csrf"
CSRF_HEADER = "X-CSRF-Token"
API_KEY_HEADER = "X-Api-Key"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TRUSTED_PROXIES_ENV = "GRIDFLOW_TRUSTED_PROXIES"
# Kinds a token may be presented as in a header; a session token only travels as the cookie,
# where the CSRF check applies.
HEADER_KINDS = (BEARER, a.CHANNEL_KEY, a.HOLDER_KEY)


class Unauthenticated(Exception):
    """A credential was given and is not good (401). The message names no secret."""


class Forbidden(Exception):
    """A known caller that may not do this (403)."""

    def __init__(self, message: str, field: str = "authorization"):
        super().__init__(message)
        self.field = field


def csrf_token(session_token: str) -> str:
    """The CSRF value of a session: derived from the session's secret, so it needs no storage
    and changes with every session."""
    return hashlib.sha256(b"gridflow-csrf:" + session_token.encode()).hexdigest()


@dataclass
class Caller:
    """One request's caller: the principal (None: anonymous), the credential's record, and
    where the request came from."""

    principal: a.Principal | None
    address: str
    credential: dict[str, Any] | None = None
    via_cookie: bool = False

    @property
    def actor(self) -> str:
        return self.principal.label if self.principal else "anonymous"


@dataclass
class Access:
    """Intake's access machinery for one process: the identity store, the trusted proxies, and
    the rate limiter."""

    store: IdentityStore
    trusted_proxies: tuple[Any, ...] = field(default_factory=tuple)

    @classmethod
    def for_runtime(cls, runtime: Any) -> Access:
        """One per process, kept on the runtime (nameko makes a service instance per request)."""
        access = runtime.extras.get("access")
        if access is None:
            access = cls(
                IdentityStore(runtime.engine, runtime.units.lock),
                trusted_proxies=parse_proxies(os.environ.get(TRUSTED_PROXIES_ENV, "")),
            )
            runtime.extras["access"] = access
        return access

    # -- the client's address ---------------------------------------------------------------

    def address(self, request: Request) -> str:
        """The client's address: the peer's, or, when the peer is a trusted proxy (the real
        topology's nginx), the last address it put in X-Forwarded-For. A client cannot choose
        its address by sending the header itself: only a trusted peer's header is read."""
        peer = request.remote_addr or "unknown"
        if self.trusted_proxies and _in(peer, self.trusted_proxies):
            forwarded = request.headers.get("X-Forwarded-For", "")
            last = forwarded.split(",")[-1].strip()
            if last and _is_ip(last):
                return last
        return peer

    # -- credentials --------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Caller:
        address = self.address(request)
        header = request.headers.get("Authorization")
        api_key = request.headers.get(API_KEY_HEADER)
        if header is not None or api_key is not None:
            token = _bearer(header) if header is not None else (api_key or "").strip()
            if not token:
                raise Unauthenticated("give 'Authorization: Bearer TOKEN'")
            resolved = self.store.resolve(token)
            if resolved is None or resolved[1]["kind"] not in HEADER_KINDS:
                raise Unauthenticated("the credential is not valid (unknown, expired or revoked)")
            principal, record = resolved
            return Caller(principal, address, record)
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            resolved = self.store.resolve(cookie) if cookie.startswith(PREFIXES[SESSION]) else None
            if resolved is None or resolved[1]["kind"] != SESSION:
                raise Unauthenticated("the session is not valid (expired or signed out); sign in")
            if request.method not in SAFE_METHODS:
                given = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(given.encode(), csrf_token(cookie).encode()):
                    raise Forbidden(
                        f"a write from a browser session needs the {CSRF_HEADER} header "
                        f"(the value of the {CSRF_COOKIE} cookie)",
                        field="csrf",
                    )
            principal, record = resolved
            return Caller(principal, address, record, via_cookie=True)
        return Caller(None, address)

    def audit(
        self,
        caller: Caller,
        action: str,
        outcome: str,
        target: str | None = None,
        **detail: Any,
    ) -> None:
        """One line of the audit log; a failure to write it is logged, never the caller's."""
        try:
            self.store.record(
                caller.actor, action, outcome, target=target, address=caller.address, detail=detail
            )
        except Exception:
            log.exception("audit_write_failed", action=action, actor=caller.actor)


PUBLIC_URL_ENV = "GRIDFLOW_PUBLIC_URL"
SIGNIN_PATH = "/api/v1/session/link"


def public_url(host_url: str) -> str:
    """The base URL people reach Gridflow at: GRIDFLOW_PUBLIC_URL, else the request's own."""
    return (os.environ.get(PUBLIC_URL_ENV) or host_url).rstrip("/")


def signin_url(host_url: str, token: str) -> str:
    return f"{public_url(host_url)}{SIGNIN_PATH}?token={token}"


def _bearer(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in(address: str, networks: tuple[Any, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def parse_proxies(text: str) -> tuple[Any, ...]:
    """``GRIDFLOW_TRUSTED_PROXIES``: addresses or networks, comma-separated."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if item:
            out.append(ipaddress.ip_network(item, strict=False))
    return tuple(out)
