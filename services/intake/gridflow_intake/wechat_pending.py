"""A resident's half of a WeChat report (their last location, or their last text) waiting for
the other half, kept in intake's database so that any intake replica can pair it: the platform
delivers each message on its own request, and behind a load balancer a resident's location and
text may reach two replicas.

Two messages of one resident arriving at once decide one after the other (on PostgreSQL, an
advisory lock per openid; SQLite's embedded default runs one unit of work at a time): the second
finds the first's half and takes it, so a pair is never left as two lone halves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import sqlalchemy as sa

from gridflow_intake.models import wechat_pending

LOCATION = "location"
TEXT = "text"
OTHER = {LOCATION: TEXT, TEXT: LOCATION}
# How long a half waits for the other (the reply asks the resident for it).
PAIRING = dt.timedelta(minutes=10)
# Expired halves removed per stored half: the table stays as small as the residents typing now.
SWEEP_BATCH = 200


def _lock_key(openid: str) -> int:
    digest = hashlib.sha256(b"gridflow-wechat:" + openid.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def pair(work: Any, openid: str, kind: str, value: Any, now: dt.datetime) -> Any:
    """The resident's waiting other half (taken: it pairs once), or None, in which case
    ``value`` is kept as their ``kind`` half until ``now + PAIRING`` (replacing an older one;
    ``value`` None keeps nothing: the message is a report on its own)."""
    db = work.db
    if db.dialect.name == "postgresql":
        db.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(openid))))
    t = wechat_pending.c
    other = db.execute(
        sa.select(t.value).where(t.openid == openid, t.kind == OTHER[kind], t.held_until > now)
    ).first()
    db.execute(sa.delete(wechat_pending).where(t.openid == openid))
    if other is not None or value is None:
        return other.value if other is not None else None
    db.execute(
        sa.insert(wechat_pending).values(
            openid=openid, kind=kind, value=value, held_until=now + PAIRING
        )
    )
    _sweep(db, now)
    return None


def _sweep(db: Any, now: dt.datetime) -> None:
    t = wechat_pending.c
    # SKIP LOCKED: the sweep never waits for (nor deadlocks with) a resident being paired.
    expired = (
        sa.select(t.openid, t.kind)
        .where(t.held_until <= now)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    db.execute(sa.delete(wechat_pending).where(sa.tuple_(t.openid, t.kind).in_(expired)))
