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

from gridflow_common import links
from gridflow_common.runtime import Work
from gridflow_intake.models import cases, progress_links, reports
from gridflow_intake.progress import PROGRESS_PATH, new_progress_token


def reporter_contacts(work: Work, case_id: str) -> list[dict[str, Any]]:
    """The case's reporters that left a way to reach them, first report first: ``channel``
    (what they reported by), ``name``, ``phone``, ``email``, ``wechat_openid``,
    ``progress_url`` and the case's ``category`` name (Chinese)."""
    case = work.db.execute(
        sa.select(cases.c.category, cases.c.jurisdiction_version).where(cases.c.case_id == case_id)
    ).first()
    if case is None:
        return []
    j = work.jurisdiction(case.jurisdiction_version)
    category = j.category(case.category) if case.category else None
    found = []
    for row in work.db.execute(
        sa.select(reports.c.id, reports.c.channel, reports.c.reporter)
        .where(reports.c.case_id == case_id)
        .order_by(reports.c.id)
    ):
        reporter = row.reporter or {}
        contact = {f: reporter.get(f) or None for f in ("phone", "email", "wechat_openid")}
        if not any(contact.values()):
            continue
        token, digest = new_progress_token()
        work.db.execute(
            sa.insert(progress_links),
            dict(token_hash=digest, report_id=row.id, created_at=work.runtime.operational_now()),
        )
        found.append(
            {
                "channel": row.channel,
                "name": reporter.get("name"),
                **contact,
                "progress_url": f"{links.public_url()}{PROGRESS_PATH}/{token}",
                "category": category.name_zh if category else None,
            }
        )
    return found
