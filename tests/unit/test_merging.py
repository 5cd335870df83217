"""Duplicate merging (合并) as plain functions: no database."""

from __future__ import annotations

import datetime as dt
import math
import random

import pytest

from gridflow_common.domain import merging as m
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.geo import EARTH_RADIUS_M, distance_m

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.timezone.utc)
LAT, LON = 28.05, 120.635
JUNK = "event.junk_pile"


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


def _case(
    case_id: str,
    north_m: float = 0.0,
    east_m: float = 0.0,
    *,
    minutes: int = 0,
    category: str = JUNK,
    status: str = v.DISPATCHED,
) -> m.Candidate:
    lat, lon = _offset(LAT, LON, north_m, east_m)
    return m.Candidate(case_id, category, status, lat, lon, T0 + dt.timedelta(minutes=minutes))


def test_a_report_within_50_m_joins_the_open_case_of_its_category():
    assert m.case_to_join([_case("A", 30, 30)], JUNK, LAT, LON) == "A"


def test_a_report_farther_than_50_m_opens_a_case_of_its_own():
    assert m.case_to_join([_case("A", 51, 0)], JUNK, LAT, LON) is None


@pytest.mark.parametrize(
    "other",
    [
        _case("A", category="event.noise"),
        _case("A", status=v.CLOSED),
        _case("A", status=v.REJECTED),
        _case("A", status=v.ON_HOLD),
    ],
)
def test_another_category_or_a_finished_case_is_no_duplicate(other):
    assert m.case_to_join([other], JUNK, LAT, LON) is None


def test_the_case_registered_first_wins_and_the_id_breaks_a_tie():
    candidates = [_case("C", 10, minutes=5), _case("B", 40, minutes=1), _case("A", 45, minutes=1)]
    assert m.case_to_join(candidates, JUNK, LAT, LON) == "A"
    assert m.case_to_join(reversed(candidates), JUNK, LAT, LON) == "A"


def test_a_report_without_category_or_point_never_merges_nor_locks():
    assert not m.mergeable(None, LAT, LON)
    assert not m.mergeable(JUNK, None, None)
    assert m.case_to_join([_case("A")], None, LAT, LON) is None
    assert m.lock_keys(None, LAT, LON) == ()
    assert m.lock_keys(JUNK, None, None) == ()


@pytest.mark.parametrize("lat", [0.0, 28.05, 45.0, 60.0, 80.0, -35.0])
def test_the_search_box_holds_every_point_within_the_radius(lat):
    box = m.search_box(lat, LON)
    for bearing in range(0, 360, 5):
        p_lat, p_lon = _offset(
            lat, LON, 50 * math.cos(math.radians(bearing)), 50 * math.sin(math.radians(bearing))
        )
        assert distance_m(lat, LON, p_lat, p_lon) == pytest.approx(50, abs=0.1)
        assert box.min_lat <= p_lat <= box.max_lat
        assert box.min_lon <= p_lon <= box.max_lon


def test_two_reports_within_the_radius_always_share_a_lock_key():
    rng = random.Random(5)
    cell = m.LOCK_CELL_DEGREES
    for _ in range(3000):
        # Many pairs straddle a cell border, where a lock on one cell alone would miss.
        lat = rng.choice([rng.uniform(-70, 70), round(rng.uniform(20, 40) / cell) * cell])
        lon = rng.choice([rng.uniform(-170, 170), round(rng.uniform(100, 130) / cell) * cell])
        distance = rng.uniform(0, 50)
        bearing = rng.uniform(0, 2 * math.pi)
        lat2, lon2 = _offset(lat, lon, distance * math.cos(bearing), distance * math.sin(bearing))
        if distance_m(lat, lon, lat2, lon2) > m.DUPLICATE_RADIUS_M:
            continue
        assert set(m.lock_keys(JUNK, lat, lon)) & set(m.lock_keys(JUNK, lat2, lon2)), (
            lat,
            lon,
            lat2,
            lon2,
        )


def test_lock_keys_are_sorted_few_and_apart_for_other_categories_and_places():
    keys = m.lock_keys(JUNK, LAT, LON)
    assert list(keys) == sorted(keys) and 1 <= len(keys) <= 4
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert not set(keys) & set(m.lock_keys("event.noise", LAT, LON))
    far_lat, far_lon = _offset(LAT, LON, 2000, 0)
    assert not set(keys) & set(m.lock_keys(JUNK, far_lat, far_lon))
    # Near a pole a box spans many cells of longitude; still a bounded handful.
    assert len(m.lock_keys(JUNK, 89.9, LON)) <= 30


def test_a_batch_takes_the_sorted_union_of_its_reports_keys():
    second = _offset(LAT, LON, 0, 5000)
    batch = m.lock_keys_for([(JUNK, LAT, LON), (JUNK, *second), (None, LAT, LON)])
    assert batch == tuple(
        sorted(set(m.lock_keys(JUNK, LAT, LON)) | set(m.lock_keys(JUNK, *second)))
    )
