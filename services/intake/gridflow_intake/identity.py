"""Users and credentials in intake's database: issue, resolve, revoke, and the audit log.

A token is shown once, when it is issued, and stored only as its SHA-256: a token is 256 random
bits, so a fast hash is enough and the table gives away no usable token. Passwords are hashed
with argon2id (argon2-cffi), with a dummy hash checked for unknown users so that a sign-in takes
as long for a user who does not exist.

Every instant here is wall-clock time: an expiry is real even on a simulated city clock.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gridflow_common.domain import access as a
from gridflow_common.domain.jurisdiction import Jurisdiction
from gridflow_common.logging import get_logger
from gridflow_common.runtime.unit_of_work import real_now
from gridflow_intake.models import audit, credentials, users

log = get_logger(__name__)

SESSION = "session"
BEARER = "bearer"
SIGNIN = "signin"
# A reporter's progress link (gridflow_intake/progress.py): not a credential of this store (it
# is kept on the report it belongs to, and TOKEN_RE below never takes it), but a token all the
# same, prefixed like the others.
REPORTER = "reporter"
CREDENTIAL_KINDS = (SESSION, BEARER, SIGNIN, a.CHANNEL_KEY, a.HOLDER_KEY)
# The token's first letters say what it is, so a leaked one is recognised (and secret scanners
# can be taught the pattern); the rest is secret.
PREFIXES = {
    SESSION: "gfs_",
    BEARER: "gft_",
    SIGNIN: "gfl_",
    a.CHANNEL_KEY: "gfk_",
    a.HOLDER_KEY: "gfd_",
    REPORTER: "gfr_",
}
SESSION_TTL = dt.timedelta(hours=12)
SIGNIN_TTL = dt.timedelta(hours=24)
# The token the embedded default writes to .gridflow/admin-token, and `gridflow admin-token`.
ADMIN_TOKEN_TTL = dt.timedelta(days=365)
MAX_TTL = dt.timedelta(days=3650)
# How long a resolved token is remembered by one process (see IdentityStore.resolve).
RESOLVE_CACHE_SECONDS = 2.0
RESOLVE_CACHE_SIZE = 10_000
# How long an ended session or sign-in link stays listed (GET /api/v1/me/tokens) before it goes.
PRUNE_AFTER = dt.timedelta(days=30)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
TOKEN_RE = re.compile(r"^gf[stlkd]_[A-Za-z0-9_-]{43}$")
ADMIN_USERNAME = "admin"

_hasher = PasswordHasher()
# argon2id's default costs 64 MiB and ~50 ms a check: twenty sign-ins at once would take 1.3 GB.
# At most this many checks run at a time in a process; the others wait their turn.
PASSWORD_CHECKS_AT_ONCE = 4
_password_checks = threading.BoundedSemaphore(PASSWORD_CHECKS_AT_ONCE)
# Checked when the user does not exist, so the answer takes as long as for a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class IdentityError(ValueError):
    """A request about users or credentials that cannot be taken; ``field`` names the field."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message)
        self.field = field
        self.status = status


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token(kind: str) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def _row(row: Any) -> dict:
    return dict(row._mapping)


class IdentityStore:
    """Users, credentials and the audit log on intake's engine. ``lock`` is the embedded
    default's database lock (SQLite takes one writer at a time); a null context elsewhere."""

    def __init__(self, engine: sa.Engine, lock: Any = None):
        self.engine = engine
        self.lock = lock or contextlib.nullcontext()
        # token hash -> (good until, monotonic; principal; credential record)
        self._cache: dict[str, tuple[float, a.Principal, dict]] = {}

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        with self.lock, self.engine.begin() as conn:
            yield conn

    # -- users --------------------------------------------------------------------------------

    def create_user(
        self,
        j: Jurisdiction,
        username: str,
        role: str,
        scope: str | None = None,
        display_name: str | None = None,
        password: str | None = None,
    ) -> dict:
        if not USERNAME_RE.match(username or ""):
            raise IdentityError(
                "username", "2 to 64 letters, digits or . _ @ -, starting with a letter or digit"
            )
        try:
            scope = a.check_scope(role, scope, j)
        except a.ScopeError as exc:
            raise IdentityError("role" if role not in a.ROLES else "scope", str(exc)) from None
        password_hash = _hash_password(password) if password is not None else None
        row = dict(
            user_id=_new_id("u"),
            username=username,
            display_name=(display_name or username).strip()[:100] or username,
            role=role,
            scope=scope,
            password_hash=password_hash,
            created_at=real_now(),
            disabled_at=None,
        )
        with self._tx() as conn:
            exists = conn.execute(
                sa.select(users.c.user_id).where(users.c.username == username)
            ).first()
            if exists:
                raise IdentityError("username", f"{username!r} is taken", status=409)
            conn.execute(sa.insert(users), row)
        return public_user(row)

    def user(self, username: str) -> dict | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(users).where(users.c.username == username)).first()
        return _row(row) if row else None

    def users(self) -> list[dict]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.username)).all()
        return [public_user(_row(r)) for r in rows]

    def set_password(self, user_id: str, password: str) -> None:
        password_hash = _hash_password(password)
        with self._tx() as conn:
            conn.execute(
                sa.update(users)
                .where(users.c.user_id == user_id)
                .values(password_hash=password_hash)
            )

    def disable_user(self, username: str) -> bool:
        """Disable a user and revoke every credential of theirs at once."""
        now = real_now()
        with self._tx() as conn:
            row = conn.execute(
                sa.select(users.c.user_id, users.c.disabled_at).where(users.c.username == username)
            ).first()
            if row is None:
                return False
            if row.disabled_at is None:
                conn.execute(
                    sa.update(users).where(users.c.user_id == row.user_id).values(disabled_at=now)
                )
            conn.execute(
                sa.update(credentials)
                .where(credentials.c.user_id == row.user_id, credentials.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        self.forget()
        return True

    def check_password(self, username: str, password: str) -> dict | None:
        """The user, when the password is theirs and they may sign in; None otherwise, after the
        same work either way."""
        row = self.user(username) if USERNAME_RE.match(username or "") else None
        stored = row["password_hash"] if row else None
        try:
            with _password_checks:
                _hasher.verify(stored or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or stored is None or row["disabled_at"] is not None:
            return None
        if _hasher.check_needs_rehash(stored):
            self.set_password(row["user_id"], password)
        return row

    def ensure_admin(self) -> dict:
        """The first administrator, made when there is none (the embedded default's first start,
        `gridflow admin-token` on a new deployment)."""
        with self._tx() as conn:
            row = conn.execute(
                sa.select(users)
                .where(users.c.role == a.ADMIN, users.c.disabled_at.is_(None))
                .order_by(users.c.created_at)
                .limit(1)
            ).first()
            if row:
                return _row(row)
            taken = conn.execute(
                sa.select(users.c.user_id).where(users.c.username == ADMIN_USERNAME)
            ).first()
            record = dict(
                user_id=_new_id("u"),
                username=ADMIN_USERNAME if not taken else f"admin-{secrets.token_hex(3)}",
                display_name="管理员",
                role=a.ADMIN,
                scope=None,
                password_hash=None,
                created_at=real_now(),
                disabled_at=None,
            )
            conn.execute(sa.insert(users), record)
        log.info("admin_created", username=record["username"])
        return record

    # -- credentials ----------------------------------------------------------------------------

    def issue(
        self,
        kind: str,
        *,
        label: str,
        user_id: str | None = None,
        channel: str | None = None,
        holder: str | None = None,
        ttl: dt.timedelta | None = None,
        rate_limit: str | None = None,
        device: str | None = None,
        device_place: dict | None = None,
    ) -> tuple[dict, str]:
        """A new credential: its public record and the token, which is never shown again.
        ``device`` (and its registered place): a sensor's channel key (sensors_api.py)."""
        if kind not in CREDENTIAL_KINDS:
            raise ValueError(f"unknown credential kind {kind!r}")
        token = new_token(kind)
        now = real_now()
        record = dict(
            credential_id=_new_id("k"),
            token_hash=token_hash(token),
            kind=kind,
            user_id=user_id,
            channel=channel,
            holder=holder,
            label=label[:100],
            rate_limit=rate_limit,
            device=device,
            device_place=device_place,
            created_at=now,
            expires_at=now + min(ttl, MAX_TTL) if ttl is not None else None,
            revoked_at=None,
            used_at=None,
        )
        with self._tx() as conn:
            conn.execute(sa.insert(credentials), record)
            if kind in (SESSION, SIGNIN) and user_id is not None:
                # Sessions and sign-in links pile up one per sign-in: a user's that ended (expired,
                # revoked or spent) a month ago go when the next one is made.
                ended = now - PRUNE_AFTER
                conn.execute(
                    sa.delete(credentials).where(
                        credentials.c.user_id == user_id,
                        credentials.c.kind.in_((SESSION, SIGNIN)),
                        sa.or_(
                            credentials.c.expires_at < ended,
                            credentials.c.revoked_at < ended,
                            credentials.c.used_at < ended,
                        ),
                    )
                )
        return _public_credential(record), token

    def resolve(self, token: str) -> tuple[a.Principal, dict] | None:
        """The principal a token stands for, and its credential's record; None for a token that
        is malformed, unknown, expired, revoked, a spent or unspent sign-in link (only
        ``redeem_signin`` takes those), or of a disabled user.

        A good answer is remembered for ``RESOLVE_CACHE_SECONDS``: a channel client sending a
        report a second costs one lookup every two seconds, not one per report. A revocation,
        a rotation or a disabled user here forgets it at once; another intake replica stops
        taking the token within those two seconds. An expiry is checked on every use."""
        if not TOKEN_RE.match(token) or token.startswith(PREFIXES[SIGNIN]):
            return None
        digest = token_hash(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now and _live(cached[2]):
            return cached[1], cached[2]
        with self._tx() as conn:
            row = conn.execute(
                sa.select(
                    credentials,
                    users.c.username,
                    users.c.role,
                    users.c.scope,
                    users.c.disabled_at.label("user_disabled_at"),
                )
                .select_from(credentials.outerjoin(users, users.c.user_id == credentials.c.user_id))
                .where(credentials.c.token_hash == digest)
            ).first()
        if row is None:
            return None
        record = _row(row)
        if not _live(record):
            return None
        if record["user_id"] is not None and (
            record.pop("user_disabled_at") is not None or record["username"] is None
        ):
            return None
        record.pop("user_disabled_at", None)
        principal = _principal(record)
        if len(self._cache) >= RESOLVE_CACHE_SIZE:
            self._cache.clear()
        self._cache[digest] = (now + RESOLVE_CACHE_SECONDS, principal, record)
        return principal, record

    def forget(self, credential_id: str | None = None) -> None:
        """Forget remembered tokens: one credential's, or (None) every one."""
        if credential_id is None:
            self._cache.clear()
            return
        for digest, (_, _, record) in list(self._cache.items()):
            if record["credential_id"] == credential_id:
                self._cache.pop(digest, None)

    def redeem_signin(self, token: str) -> dict | None:
        """Spend a one-time sign-in link: its user, once; None for any other token."""
        if not TOKEN_RE.match(token) or not token.startswith(PREFIXES[SIGNIN]):
            return None
        now = real_now()
        with self._tx() as conn:
            row = conn.execute(
                sa.select(credentials).where(credentials.c.token_hash == token_hash(token))
            ).first()
            if row is None or not _live(_row(row)) or row.used_at is not None:
                return None
            spent = conn.execute(
                sa.update(credentials)
                .where(
                    credentials.c.credential_id == row.credential_id,
                    credentials.c.used_at.is_(None),
                )
                .values(used_at=now)
            ).rowcount
            if not spent:
                return None
            user = conn.execute(
                sa.select(users).where(
                    users.c.user_id == row.user_id, users.c.disabled_at.is_(None)
                )
            ).first()
        return _row(user) if user else None

    def revoke(self, credential_id: str, user_id: str | None = None) -> bool:
        """Revoke a credential (only one of ``user_id``'s, when given). False when there is no
        such live credential."""
        where = [credentials.c.credential_id == credential_id, credentials.c.revoked_at.is_(None)]
        if user_id is not None:
            where.append(credentials.c.user_id == user_id)
        with self._tx() as conn:
            revoked = bool(
                conn.execute(
                    sa.update(credentials).where(*where).values(revoked_at=real_now())
                ).rowcount
            )
        self.forget(credential_id)
        return revoked

    def rotate(self, credential_id: str, grace: dt.timedelta) -> tuple[dict, str] | None:
        """A new key for the same channel or holder (label and limit kept), the old one good for
        ``grace`` more (at most its own expiry), so a department can switch its system over
        without a moment refused. None when there is no such live key."""
        with self._tx() as conn:
            row = conn.execute(
                sa.select(credentials).where(
                    credentials.c.credential_id == credential_id,
                    credentials.c.kind.in_((a.CHANNEL_KEY, a.HOLDER_KEY)),
                )
            ).first()
            if row is None or not _live(_row(row)):
                return None
            old = _row(row)
            until = real_now() + grace
            if old["expires_at"] is None or old["expires_at"] > until:
                conn.execute(
                    sa.update(credentials)
                    .where(credentials.c.credential_id == credential_id)
                    .values(expires_at=until)
                )
        self.forget(credential_id)
        ttl = old["expires_at"] - old["created_at"] if old["expires_at"] else None
        return self.issue(
            old["kind"],
            label=old["label"],
            channel=old["channel"],
            holder=old["holder"],
            ttl=ttl,
            rate_limit=old["rate_limit"],
            device=old.get("device"),
            device_place=old.get("device_place"),
        )

    def credentials(
        self, *, kinds: tuple[str, ...] | None = None, user_id: str | None = None
    ) -> list[dict]:
        query = sa.select(credentials).order_by(
            credentials.c.created_at, credentials.c.credential_id
        )
        if kinds:
            query = query.where(credentials.c.kind.in_(kinds))
        if user_id is not None:
            query = query.where(credentials.c.user_id == user_id)
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [_public_credential(_row(r)) for r in rows]

    # -- audit ----------------------------------------------------------------------------------

    def record(
        self,
        actor: str,
        action: str,
        outcome: str,
        *,
        target: str | None = None,
        address: str | None = None,
        detail: dict | None = None,
        conn: sa.Connection | None = None,
    ) -> None:
        """One audit line; on ``conn`` it is part of that transaction (the request's own unit of
        work: the line and what it records commit together, at no extra commit)."""
        row = dict(
            at=real_now(),
            actor=actor[:200],
            action=action[:60],
            target=target[:200] if target else None,
            outcome=outcome,
            address=address[:64] if address else None,
            detail=detail or {},
        )
        if conn is not None:
            conn.execute(sa.insert(audit), row)
            return
        with self._tx() as own:
            own.execute(sa.insert(audit), row)

    def audit_entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[dict]:
        """Newest first; ``before_id`` pages back."""
        query = sa.select(audit).order_by(audit.c.id.desc()).limit(limit)
        if actor:
            query = query.where(audit.c.actor == actor)
        if action:
            query = query.where(audit.c.action == action)
        if since:
            query = query.where(audit.c.at >= since)
        if before_id:
            query = query.where(audit.c.id < before_id)
        with self._tx() as conn:
            return [_row(r) for r in conn.execute(query).all()]


def _hash_password(password: str) -> str:
    if (
        not isinstance(password, str)
        or not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH
    ):
        raise IdentityError(
            "password", f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
        )
    if "\x00" in password:
        raise IdentityError("password", "must not contain NUL")
    with _password_checks:
        return _hasher.hash(password)


def _live(record: dict) -> bool:
    if record["revoked_at"] is not None:
        return False
    expires = record["expires_at"]
    return expires is None or expires > real_now()


def user_principal(user: dict, credential_id: str) -> a.Principal:
    """A user (a row of intake_users, or a credential record joined with its user) as the
    principal of a request made with ``credential_id``."""
    return a.Principal(
        kind=a.USER,
        id=user["user_id"],
        name=user["username"],
        credential_id=credential_id,
        role=user["role"],
        scope=user["scope"],
    )


def _principal(record: dict) -> a.Principal:
    kind = record["kind"]
    if kind in (SESSION, BEARER):
        return user_principal(record, record["credential_id"])
    return a.Principal(
        kind=kind,
        id=record["credential_id"],
        name=record["label"],
        credential_id=record["credential_id"],
        scope=record["holder"],
        channel=record["channel"],
    )


def public_user(row: dict) -> dict:
    return {
        "user_id": row["user_id"],
        "username": row["username"],
        "display_name": row["display_name"],
        "role": row["role"],
        "scope": row["scope"],
        "has_password": row.get("password_hash") is not None,
        "created_at": row["created_at"].isoformat(),
        "disabled_at": row["disabled_at"].isoformat() if row.get("disabled_at") else None,
    }


def _public_credential(row: dict) -> dict:
    def when(key: str) -> str | None:
        return row[key].isoformat() if row.get(key) else None

    return {
        "credential_id": row["credential_id"],
        "kind": row["kind"],
        "label": row["label"],
        "user_id": row["user_id"],
        "channel": row["channel"],
        "holder": row["holder"],
        "rate_limit": row["rate_limit"],
        "device": row.get("device"),
        "created_at": when("created_at"),
        "expires_at": when("expires_at"),
        "revoked_at": when("revoked_at"),
    }
