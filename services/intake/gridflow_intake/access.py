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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request

from gridflow_common.domain import access as a
from gridflow_common.logging import get_logger
from gridflow_intake.identity import BEARER, PREFIXES, SESSION, IdentityStore
from gridflow_intake.ratelimit import (
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    SignInGuard,
    make_rate_limiter,
    parse_limit,
)

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


class RateLimited(Exception):
    """Too many requests from one key, user or address (429 with Retry-After)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(Exception):
    """A known caller that may not do this (403). ``caller``: who was refused, when the refusal
    comes before the request has a caller of its own (at the door), for the audit line."""

    def __init__(self, message: str, field: str = "authorization", caller: Caller | None = None):
        super().__init__(message)
        self.field = field
        self.caller = caller


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


@dataclass(frozen=True)
class Limits:
    """How many requests a caller may make: per address for callers without a credential
    (``anonymous``; anonymous reports through the public form also under ``public_reports``),
    per key (unless the key has a limit of its own) and per user. GCRA: a burst of ``count``,
    then one more every ``seconds / count``."""

    anonymous: Limit = Limit(120, 60)
    public_reports: Limit = Limit(10, 60)
    key: Limit = Limit(600, 60)
    user: Limit = Limit(600, 60)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Limits:
        environ = os.environ if environ is None else environ
        values = {}
        for name, variable in LIMIT_VARIABLES.items():
            text = environ.get(variable)
            if text:
                try:
                    values[name] = parse_limit(text)
                except ValueError as exc:
                    raise ValueError(f"{variable}: {exc}") from None
        return cls(**values)


# The knobs of ``Limits`` (README, "The knobs").
LIMIT_VARIABLES = {
    "anonymous": "GRIDFLOW_RATE_ANONYMOUS",
    "public_reports": "GRIDFLOW_RATE_PUBLIC_REPORTS",
    "key": "GRIDFLOW_RATE_KEY",
    "user": "GRIDFLOW_RATE_USER",
}
REDIS_URL_ENV = "REDIS_URL"


@dataclass
class Access:
    """Intake's access machinery for one process: the identity store, the trusted proxies, the
    rate limiter (Redis, shared by every intake replica, in the real topology; memory in the
    embedded default) and the sign-in guard."""

    store: IdentityStore
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    limits: Limits = field(default_factory=Limits)
    trusted_proxies: tuple[Any, ...] = field(default_factory=tuple)
    signin_guard: SignInGuard = field(init=False)

    def __post_init__(self) -> None:
        self.signin_guard = SignInGuard(self.limiter)

    @classmethod
    def for_runtime(cls, runtime: Any) -> Access:
        """One per process, kept on the runtime (nameko makes a service instance per request);
        its settings are read from the environment once."""
        access = runtime.extras.get("access")
        if access is None:
            access = cls(
                IdentityStore(runtime.engine, runtime.units.lock),
                limiter=make_rate_limiter(os.environ.get(REDIS_URL_ENV) or None),
                limits=Limits.from_environment(),
                trusted_proxies=parse_proxies(os.environ.get(TRUSTED_PROXIES_ENV, "")),
            )
            runtime.extras["access"] = access
        return access

    # -- rate limits -----------------------------------------------------------------------------

    def limit(self, caller: Caller) -> None:
        """Spend one request of the caller's budget, or RateLimited."""
        principal = caller.principal
        if principal is None:
            bucket, limit, who = f"addr:{caller.address}", self.limits.anonymous, "this address"
        elif principal.is_user:
            bucket, limit, who = f"user:{principal.id}", self.limits.user, "this user"
        else:
            own = (caller.credential or {}).get("rate_limit")
            limit = parse_limit(own) if own else self.limits.key
            bucket, who = f"key:{principal.credential_id}", "this key"
        self._spend(bucket, limit, who)

    def limit_public_report(self, caller: Caller) -> None:
        """The public form's own budget, per address, besides the anonymous one."""
        self._spend(f"web:{caller.address}", self.limits.public_reports, "this address")

    def limit_failed_credential(self, address: str) -> None:
        """A credential that was not good costs its address as an anonymous request does, so
        guessing tokens is as slow as anything else without one."""
        self._spend(f"addr:{address}", self.limits.anonymous, "this address")

    def _spend(self, bucket: str, limit: Limit, who: str) -> None:
        decision = self.limiter.hit(bucket, limit)
        if not decision.allowed:
            raise RateLimited(
                f"too many requests from {who} (at most {limit}); try again in "
                f"{decision.retry_after} s",
                decision.retry_after,
            )

    # -- the client's address ---------------------------------------------------------------

    def from_trusted_proxy(self, request: Request) -> bool:
        """Did ``request`` come through a trusted proxy, whose forwarded headers are believed?"""
        peer = request.remote_addr or ""
        return bool(self.trusted_proxies) and _in(peer, self.trusted_proxies)

    def address(self, request: Request) -> str:
        """The client's address: the peer's, or, when the peer is a trusted proxy (the real
        topology's nginx), the last address it put in X-Forwarded-For. A client cannot choose
        its address by sending the header itself: only a trusted peer's header is read."""
        peer = request.remote_addr or "unknown"
        if self.from_trusted_proxy(request):
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
            principal, record = resolved
            caller = Caller(principal, address, record, via_cookie=True)
            if request.method not in SAFE_METHODS:
                given = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(given.encode(), csrf_token(cookie).encode()):
                    # Audited as the session's user: whose session another site's page tried
                    # to write with is what an operator needs to know.
                    raise Forbidden(
                        f"a write from a browser session needs the {CSRF_HEADER} header "
                        f"(the value of the {CSRF_COOKIE} cookie)",
                        field="csrf",
                        caller=caller,
                    )
            return caller
        return Caller(None, address)

    def audit(
        self,
        caller: Caller,
        action: str,
        outcome: str,
        target: str | None = None,
        conn: Any = None,
        **detail: Any,
    ) -> None:
        """One line of the audit log; a failure to write it is logged, never the caller's. On
        ``conn`` (a unit of work's connection) it commits, or not, with that work."""
        if conn is not None:
            self.store.record(
                caller.actor,
                action,
                outcome,
                target=target,
                address=caller.address,
                detail=detail,
                conn=conn,
            )
            return
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
