"""Where a report is (地址定位): an address turned into a grid and a point through the
jurisdiction's address list (``domain.addresses``), and the duplicate search for a report that
only names a grid. ``handlers.resolve_location`` and ``handlers._open_duplicate`` call these."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from gridflow_common.domain import lifecycle, merging
from gridflow_common.runtime import Work
from gridflow_intake.models import cases


def resolve_address(j: Any, address: str, rejected: type[Exception]) -> tuple[str, Any, Any]:
    """(area code, lat, lon) of the most specific place ``address`` names: a listed building,
    compound or road section gives its grid and point (the listed one, else the grid's
    centroid); a grid's, community's or street's name gives that area and no point. Nothing
    named: ``rejected`` (422, ``location.address``)."""
    match = j.resolve_address(address)
    if match is None:
        raise rejected(
            422,
            {
                "location.address": [
                    "no address, road, compound, building, street, community or grid of the "
                    "jurisdiction matches this address"
                ]
            },
        )
    return match.area_code, match.lat, match.lon


def merge_grid(j: Any, area_code: str) -> str | None:
    """The grid a point-less report may be merged in: its area when that is a grid and the
    city merges by grid (settings.csv ``merge_by_grid``; off by default: a grid holds some 300
    households, and five reports of dark streetlights in one grid are as often five lamps as
    one; the grid's hotspot alert is what many of them raise)."""
    if not getattr(j, "merge_by_grid", False):
        return None
    area = j.area(area_code)
    return area.code if area is not None and area.level == "grid" else None


def open_duplicate_in_grid(work: Work, category: str | None, grid_code: str | None) -> str | None:
    """The open case a grid-only report joins (``merging.grid_case_to_join``), decided under
    the grid's lock as point reports decide under theirs."""
    if not merging.grid_mergeable(category, grid_code):
        return None
    if work.db.dialect.name == "postgresql":
        for key in merging.grid_lock_keys(category, grid_code):
            work.db.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    rows = work.db.execute(
        sa.select(
            cases.c.case_id,
            cases.c.category,
            cases.c.status,
            cases.c.lat,
            cases.c.lon,
            cases.c.registered_at,
            cases.c.area_code,
        ).where(
            cases.c.area_code == grid_code,
            cases.c.category == category,
            cases.c.status.in_(lifecycle.OPEN_STATUSES),
            cases.c.lat.is_(None),
        )
    ).all()
    return merging.grid_case_to_join(
        (
            (
                merging.Candidate(r.case_id, r.category, r.status, r.lat, r.lon, r.registered_at),
                r.area_code,
            )
            for r in rows
        ),
        category,
        grid_code,
    )
