"""Reporter contacts for notify (residents hear back, 回访告知): the intake RPC
``reporter_contacts(case_id)``.

Notify asks when it sends a resident's message, so a contact never travels in an event nor
rests in notify's tables whole. Each contact comes with a fresh progress link for its report:
the report's own token is shown once and only its hash is kept, so intake makes another token
for the same report (``intake_progress_links``, its hash only), which the progress page takes
like the first.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from gridflow_common import links as links_module
from gridflow_common.domain import vocabulary as v
from gridflow_common.runtime import Work
from gridflow_intake.models import cases, progress_links, reports, timeline
from gridflow_intake.progress import PROGRESS_PATH, new_progress_token

# How deep a chain of merges (A into B, B into C) is followed: far beyond any real one.
MAX_MERGE_DEPTH = 20


def merged_cases(work: Work, case_id: str) -> list[str]:
    """``case_id`` and every case merged into it (合并), directly or through another, from the
    timeline's ``merged_from`` entries: their reporters are the case's reporters too."""
    found = [case_id]
    frontier = [case_id]
    for _ in range(MAX_MERGE_DEPTH):
        if not frontier:
            break
        entries = work.db.execute(
            sa.select(timeline.c.detail).where(
                timeline.c.case_id.in_(frontier), timeline.c.kind == v.ENTRY_MERGED_FROM
            )
        ).scalars()
        frontier = []
        for detail in entries:
            merged = (detail or {}).get("merged")
            if merged and merged not in found:
                found.append(merged)
                frontier.append(merged)
    return found


def reporter_contacts(
    work: Work, case_id: str, report_id: int | None = None, links: bool = True
) -> list[dict[str, Any]]:
    """The case's reporters that left a way to reach them (the reports of cases merged into it
    included), first report first: ``report_id``, ``channel`` (what they reported by),
    ``name``, ``phone``, ``email``, ``wechat_openid``, ``progress_url`` and the case's
    ``category`` name (Chinese).

    ``report_id``: that report's reporter only (one of the case's, else none). ``links``
    false: no progress link is made (``progress_url`` null), for an asker that only counts the
    reporters before it writes to each."""
    case = work.db.execute(
        sa.select(cases.c.category, cases.c.jurisdiction_version).where(cases.c.case_id == case_id)
    ).first()
    if case is None:
        return []
    j = work.jurisdiction(case.jurisdiction_version)
    category = j.category(case.category) if case.category else None
    query = (
        sa.select(reports.c.id, reports.c.channel, reports.c.reporter)
        .where(reports.c.case_id.in_(merged_cases(work, case_id)))
        .order_by(reports.c.id)
    )
    if report_id is not None:
        query = query.where(reports.c.id == report_id)
    found = []
    for row in work.db.execute(query):
        reporter = row.reporter or {}
        contact = {f: reporter.get(f) or None for f in ("phone", "email", "wechat_openid")}
        if not any(contact.values()):
            continue
        url = None
        if links:
            token, digest = new_progress_token()
            work.db.execute(
                sa.insert(progress_links),
                dict(
                    token_hash=digest, report_id=row.id, created_at=work.runtime.operational_now()
                ),
            )
            url = f"{links_module.public_url()}{PROGRESS_PATH}/{token}"
        found.append(
            {
                "report_id": row.id,
                "channel": row.channel,
                "name": reporter.get("name"),
                **contact,
                "progress_url": url,
                "category": category.name_zh if category else None,
            }
        )
    return found
