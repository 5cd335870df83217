"""Sensor alerts merged per device (合并): while a device's case is open, its next alert joins
that case; once the case is closed (or rejected, or on the long-term list) the next alert opens a
new one. Called from ``handlers.register_report`` before the merge by place.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa

from gridflow_common.domain import lifecycle
from gridflow_intake.models import cases, reports


def _lock_key(device: str) -> int:
    digest = hashlib.sha256(b"gridflow-device:" + device.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def open_case_of_device(work: Any, report: dict) -> str | None:
    """The open case the report's device already has, or None (no device, or none open)."""
    device = report.get("device")
    if not device:
        return None
    if work.db.dialect.name == "postgresql":
        # Two alerts of one device decide one after the other (the second sees the case the
        # first registered); SQLite's embedded default runs one unit of work at a time.
        work.db.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(device))))
    return work.db.execute(
        sa.select(cases.c.case_id)
        .select_from(reports.join(cases, cases.c.case_id == reports.c.case_id))
        .where(reports.c.device == device, cases.c.status.in_(lifecycle.OPEN_STATUSES))
        .order_by(cases.c.registered_at.desc())
        .limit(1)
    ).scalar()
