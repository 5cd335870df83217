"""Intake's global figure for /metrics: the open cases by the colour of their running clock and
their tier, one count for the whole city (exported by intake's designated replica only, see
``gridflow_common.designated``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import sqlalchemy as sa

from gridflow_common.domain import lifecycle as lc
from gridflow_common.domain import vocabulary as v
from gridflow_intake.models import cases

if TYPE_CHECKING:
    from gridflow_common.runtime import ServiceRuntime

NONE = "none"


def open_cases(runtime: ServiceRuntime) -> Iterator[tuple[str, tuple[str, ...], float]]:
    """One grouped count, at most once per cache interval: every colour and tier appears (0 when
    none), so a dashboard's series do not come and go."""
    with runtime.units.lock, runtime.engine.connect() as conn:
        rows = conn.execute(
            sa.select(cases.c.colour, cases.c.tier, sa.func.count())
            .where(cases.c.status.in_(lc.OPEN_STATUSES))
            .group_by(cases.c.colour, cases.c.tier)
        ).all()
    counts = {(colour or NONE, tier or NONE): n for colour, tier, n in rows}
    for colour in (*v.COLOURS, NONE):
        for tier in (*v.TIERS, NONE):
            yield "gridflow_cases_open", (colour, tier), float(counts.pop((colour, tier), 0))
    # A colour or tier outside the vocabulary (a newer writer): still counted, never lost.
    for (colour, tier), n in counts.items():
        yield "gridflow_cases_open", (colour, tier), float(n)
