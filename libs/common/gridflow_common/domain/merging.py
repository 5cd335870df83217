"""Duplicate merging (合并): a report of the same category within 50 m of an open case joins
that case instead of opening another. Standard library only.

The service layer narrows the candidates with an indexed query on ``search_box``, then lets
``case_to_join`` decide. Two reports of one place that arrive together must meet the same
decision one after the other, never side by side: ``lock_keys`` names what the service layer
locks for the length of its transaction before it looks for candidates.

Lock keys: the plane is cut into cells of ``LOCK_CELL_DEGREES``; a report locks every cell its
search box overlaps (one cell for most reports, two or four on a cell border), keyed by category.
Two reports within the radius of each other each have the other's point inside their own box, so
both lock the cell that point lies in and the second waits for the first. Keys are returned
sorted: everyone takes them in one order, so two transactions never each hold a key the other
waits for, and a batch of reports takes the sorted union of its reports' keys. Cells keep
unrelated places apart: reports a kilometre apart, or of other categories, never wait for each
other, where one lock per category would serialise a whole city's reports of that category.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

from gridflow_common.domain.geo import EARTH_RADIUS_M, distance_m
from gridflow_common.domain.lifecycle import is_open

DUPLICATE_RADIUS_M = 50.0
# About 1.1 km north-south: far wider than a search box (100 m), so a box overlaps at most two
# cells each way, yet small enough that a city's reports of one category rarely share a cell.
LOCK_CELL_DEGREES = 0.01
_METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180
# PostgreSQL's advisory locks are one key space per database: the namespace keeps these keys
# apart from any other use.
_LOCK_NAMESPACE = b"gridflow-merge"


@dataclass(frozen=True)
class SearchBox:
    """Every point within the radius lies inside (it is a little larger, never smaller)."""

    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float


@dataclass(frozen=True)
class Candidate:
    case_id: str
    category: str | None
    status: str
    lat: float | None
    lon: float | None
    registered_at: dt.datetime


def mergeable(category: str | None, lat: float | None, lon: float | None) -> bool:
    """Only a categorised report with a point can repeat a case: without a point there is no
    distance, and without a category no sameness."""
    return category is not None and lat is not None and lon is not None


def search_box(lat: float, lon: float, radius_m: float = DUPLICATE_RADIUS_M) -> SearchBox:
    # 1% spare against rounding; the exact distance decides afterwards.
    dlat = math.degrees(radius_m / EARTH_RADIUS_M) * 1.01
    # Longitude degrees shrink with latitude; the floor on the cosine keeps the box finite at
    # the poles.
    dlon = dlat / max(math.cos(math.radians(min(abs(lat) + dlat, 90.0))), 0.01)
    return SearchBox(lat - dlat, lat + dlat, lon - dlon, lon + dlon)


def case_to_join(
    candidates: Iterable[Candidate],
    category: str | None,
    lat: float | None,
    lon: float | None,
    radius_m: float = DUPLICATE_RADIUS_M,
) -> str | None:
    """The case a report joins: of the open cases of its category within the radius, the one
    registered first (the case id breaks a tie, so every replica picks the same one)."""
    if not mergeable(category, lat, lon):
        return None
    assert lat is not None and lon is not None  # mergeable() said so
    matches = [
        c
        for c in candidates
        if c.category == category
        and is_open(c.status)
        and c.lat is not None
        and c.lon is not None
        and distance_m(lat, lon, c.lat, c.lon) <= radius_m
    ]
    if not matches:
        return None
    return min(matches, key=lambda c: (c.registered_at, c.case_id)).case_id


def _key(*parts: str) -> int:
    digest = hashlib.blake2b(
        "\x1f".join(parts).encode("utf-8"), digest_size=8, person=_LOCK_NAMESPACE
    ).digest()
    # PostgreSQL's advisory locks take a signed 64-bit key.
    return int.from_bytes(digest, "big", signed=True)


def _cells(low: float, high: float) -> range:
    return range(math.floor(low / LOCK_CELL_DEGREES), math.floor(high / LOCK_CELL_DEGREES) + 1)


def lock_keys(
    category: str | None, lat: float | None, lon: float | None, radius_m: float = DUPLICATE_RADIUS_M
) -> tuple[int, ...]:
    """The keys to hold while deciding whether this report joins a case; sorted; none when it
    cannot join any."""
    if not mergeable(category, lat, lon):
        return ()
    assert category is not None and lat is not None and lon is not None
    box = search_box(lat, lon, radius_m)
    # Near the poles a box spans up to a dozen cells of longitude; still a handful of keys.
    rows, columns = _cells(box.min_lat, box.max_lat), _cells(box.min_lon, box.max_lon)
    return tuple(sorted({_key(category, str(i), str(j)) for i in rows for j in columns}))


def lock_keys_for(
    reports: Iterable[tuple[str | None, float | None, float | None]],
) -> tuple[int, ...]:
    """Keys for a batch of reports (category, lat, lon) decided in one transaction: the sorted
    union, taken in that order."""
    keys: set[int] = set()
    for category, lat, lon in reports:
        keys.update(lock_keys(category, lat, lon))
    return tuple(sorted(keys))


# --------------------------------------------------------------------------- merging by grid
# A report that names only a grid (its code, or a grid's name in an address) has no point, so no
# distance: it joins the open case of its category in that grid that has no point either (the
# first registered). A case with a point is not joined from the grid: the grid is hundreds of
# metres across and the point says where the problem is; a grid-only report beside it may well
# be another one (docs/addresses.md).


def grid_mergeable(category: str | None, grid_code: str | None) -> bool:
    return category is not None and grid_code is not None


def grid_case_to_join(
    candidates: Iterable[tuple[Candidate, str]], category: str | None, grid_code: str | None
) -> str | None:
    """Of ``(candidate, its area code)``: the open, pointless case of ``category`` in
    ``grid_code`` registered first (the case id breaks a tie)."""
    if not grid_mergeable(category, grid_code):
        return None
    matches = [
        c
        for c, area_code in candidates
        if area_code == grid_code
        and c.category == category
        and is_open(c.status)
        and (c.lat is None or c.lon is None)
    ]
    if not matches:
        return None
    return min(matches, key=lambda c: (c.registered_at, c.case_id)).case_id


def grid_lock_keys(category: str | None, grid_code: str | None) -> tuple[int, ...]:
    """The key held while deciding whether a grid-only report joins a case: one per category
    and grid, apart from the point keys (a point report never joins a grid-only case)."""
    if not grid_mergeable(category, grid_code):
        return ()
    assert category is not None and grid_code is not None
    return (_key(category, "grid", grid_code),)
