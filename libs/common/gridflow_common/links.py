"""Signed one-time action links: what an e-mail gives a unit with no system of its own, so that
one click accepts (签收), starts (开始处置) or resolves (办结) the work it was sent, as that unit.

A link is ``{public_url}/api/v1/links/{token}``; the token is

    gfa_ + base64url(claims as compact JSON) + "." + base64url(HMAC-SHA256(secret, payload))

where ``payload`` is the base64url text after the prefix, exactly as it travels (no JSON
canonicalisation to get wrong between signer and verifier). The claims say which delivery, case,
assignment and unit the link acts for, which action (a Gridflow update status), when it expires
(Unix seconds, operational time: an e-mail's link lives in the real world, not on the city's
simulated clock) and a random nonce. The ``gfa_`` prefix is there for the logs: every access
log masks what follows a ``gf?_`` prefix (``gridflow_common.logging``, deploy/nginx.conf), so a
request line never carries a usable link.

The link proves it was made by Gridflow for that unit; that it is used once is intake's
business (``intake_spent_links``). The secret is ``GRIDFLOW_LINK_SECRET`` when set, else 32
random bytes kept in the platform table ``gridflow_secrets``: made by whichever process needs it
first (insert if absent, then read what is there), so every service and every replica signs and
verifies with the same one, in the embedded default (SQLite) and the real topology (PostgreSQL).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gridflow_common.adapters.contract import Delivery
from gridflow_common.db import secrets_table
from gridflow_common.domain import vocabulary as v

LINK_SECRET_ENV = "GRIDFLOW_LINK_SECRET"
SECRET_NAME = "action_links"
SECRET_BYTES = 32
PREFIX = "gfa_"
LINKS_PATH = "/api/v1/links"
# What a link may do: the reports a holder makes that need nothing but a click. Returning a case
# or saying it is beyond one's authority needs a reason, which a link cannot carry.
ACTIONS = (v.ACCEPTED, v.IN_PROGRESS, v.RESOLVED)
# What a person clicks, in the words of the closed loop: sign for it, start handling, finish.
ACTION_NAMES = {v.ACCEPTED: "签收", v.IN_PROGRESS: "开始处置", v.RESOLVED: "办结"}
# A link is for days, not months: longer than this is refused when it is made.
MAX_LIFETIME_SECONDS = 31 * 24 * 3600
# Far beyond any claims this module writes (about 300 characters): a longer token is refused
# before it is decoded, so a hostile path costs nothing.
MAX_TOKEN_LENGTH = 2048
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_SIGNATURE_LENGTH = 43  # 32 bytes, base64url without padding


class LinkInvalid(ValueError):
    """Not a link Gridflow made, or changed since: one message whatever is wrong with it, so a
    forger learns nothing from the answer."""

    def __init__(self) -> None:
        super().__init__("this link is not valid")


class LinkExpired(ValueError):
    """A link Gridflow made whose time has passed."""

    def __init__(self, claims: LinkClaims):
        super().__init__("this link has expired")
        self.claims = claims


@dataclass(frozen=True)
class LinkClaims:
    delivery_id: str
    case_id: str
    assignment_id: str
    unit: str
    action: str
    expires: int  # Unix seconds
    nonce: str


class SecretSource(Protocol):
    def key(self) -> bytes: ...


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or not set(text) <= _B64URL or len(text) % 4 == 1:
        raise LinkInvalid()
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise LinkInvalid() from None
    # One string per token: the last character's unused bits must be zero, as sign() writes
    # them (otherwise four spellings of one signature would all verify).
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != text:
        raise LinkInvalid()
    return decoded


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()


def sign(claims: LinkClaims, key: bytes) -> str:
    """The token for ``claims``."""
    if claims.action not in ACTIONS:
        raise ValueError(f"a link cannot {claims.action!r}; it can: {', '.join(ACTIONS)}")
    body = json.dumps(asdict(claims), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    payload = _b64encode(body.encode("utf-8"))
    return f"{PREFIX}{payload}.{_b64encode(_mac(key, payload))}"


def _fields(data: Any) -> LinkClaims:
    if not isinstance(data, dict) or set(data) != set(LinkClaims.__dataclass_fields__):
        raise LinkInvalid()
    expires = data["expires"]
    texts = [data[k] for k in LinkClaims.__dataclass_fields__ if k != "expires"]
    if not all(isinstance(t, str) and t for t in texts):
        raise LinkInvalid()
    if isinstance(expires, bool) or not isinstance(expires, int):
        raise LinkInvalid()
    if data["action"] not in ACTIONS:
        raise LinkInvalid()
    return LinkClaims(**data)


def verify(token: str, secret_source: SecretSource | bytes, now: float) -> LinkClaims:
    """The claims of ``token`` when Gridflow made it and it has not expired at ``now`` (Unix
    seconds); else ``LinkInvalid`` (malformed, tampered, signed with another secret: never
    which) or ``LinkExpired``. The signature is checked before anything in the claims is
    believed, their expiry included."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not token.startswith(PREFIX):
        raise LinkInvalid()
    payload, dot, signature = token[len(PREFIX) :].partition(".")
    if not dot or len(signature) != _SIGNATURE_LENGTH:
        raise LinkInvalid()
    given = _b64decode(signature)
    key = secret_source if isinstance(secret_source, bytes) else secret_source.key()
    if not set(payload) <= _B64URL or not hmac.compare_digest(_mac(key, payload), given):
        raise LinkInvalid()
    try:
        claims = _fields(json.loads(_b64decode(payload).decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise LinkInvalid() from None
    if now >= claims.expires:
        raise LinkExpired(claims)
    return claims


class LinkSecret:
    """The signing key, read once per process and kept in memory: ``GRIDFLOW_LINK_SECRET`` when
    set, else the platform table's (made on first use). The first ``key()`` reads on a short
    connection of its own, committed before the key is kept: a key read inside a unit of work
    that then rolled back would be one no other process ever sees. A service reads it once at
    start (``key()``) so no unit of work ever waits for it."""

    def __init__(self, engine: sa.Engine | None, environ: Mapping[str, str] | None = None):
        self.engine = engine
        self.environ = os.environ if environ is None else environ
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def key(self) -> bytes:
        if self._key is not None:
            return self._key
        with self._lock:
            if self._key is None:
                self._key = self._read()
        return self._key

    def _read(self) -> bytes:
        configured = self.environ.get(LINK_SECRET_ENV)
        if configured:
            if len(configured.encode("utf-8")) < 16:
                raise ValueError(f"{LINK_SECRET_ENV} is too short: give at least 16 characters")
            return configured.encode("utf-8")
        if self.engine is None:
            raise ValueError(f"no {LINK_SECRET_ENV} and no database to keep a secret in")
        with self.engine.begin() as own:
            return stored_secret(own)


def stored_secret(conn: sa.Connection, name: str = SECRET_NAME) -> bytes:
    """The platform's secret ``name``: made now if there is none. Two processes making it at
    once both insert if absent, and both read back the one that won."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    fresh = _b64encode(secrets.token_bytes(SECRET_BYTES))
    conn.execute(
        dialect.insert(secrets_table).on_conflict_do_nothing(index_elements=["name"]),
        {"name": name, "value": fresh},
    )
    value = conn.execute(
        sa.select(secrets_table.c.value).where(secrets_table.c.name == name)
    ).scalar_one()
    return _b64decode(value)


PUBLIC_URL_ENV = "GRIDFLOW_PUBLIC_URL"
PORT_ENV = "GRIDFLOW_PORT"


def public_url(environ: Mapping[str, str] | None = None) -> str:
    """Where people reach Gridflow, for links made away from any request (the departments
    service mails them): ``GRIDFLOW_PUBLIC_URL``, else this machine on ``GRIDFLOW_PORT``
    (8000), which is right only for a Gridflow used on the machine it runs on."""
    environ = os.environ if environ is None else environ
    configured = environ.get(PUBLIC_URL_ENV)
    if configured:
        return configured.rstrip("/")
    return f"http://127.0.0.1:{environ.get(PORT_ENV) or 8000}"


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{LINKS_PATH}/{token}"


def claims_for(delivery: Delivery, action: str, expires: int) -> LinkClaims:
    return LinkClaims(
        delivery_id=delivery.delivery_id,
        case_id=delivery.case_id,
        assignment_id=delivery.assignment_id,
        unit=delivery.unit,
        action=action,
        expires=expires,
        nonce=_b64encode(secrets.token_bytes(12)),
    )


def make_signer(
    engine: sa.Engine | LinkSecret,
    public_url: str,
    now: Callable[[], float] = time.time,
) -> Callable[[Delivery, str, float], str]:
    """``AdapterContext.sign_link``: ``sign_link(delivery, action, expires_in_seconds)`` is the
    full URL of a link that performs ``action`` on the delivery's case once, as its unit, for
    ``expires_in_seconds`` from ``now()`` (operational time, Unix seconds)."""
    secret = engine if isinstance(engine, LinkSecret) else LinkSecret(engine)

    def sign_link(delivery: Delivery, action: str, expires_in_seconds: float) -> str:
        if not 0 < expires_in_seconds <= MAX_LIFETIME_SECONDS:
            raise ValueError(
                f"a link lives more than 0 and at most {MAX_LIFETIME_SECONDS} seconds, "
                f"not {expires_in_seconds}"
            )
        expires = int(now() + expires_in_seconds)
        return link_url(public_url, sign(claims_for(delivery, action, expires), secret.key()))

    return sign_link
