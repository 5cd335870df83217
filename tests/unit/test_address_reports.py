"""Reports located by an address or a grid code on the embedded default (SQLite, Lucheng with
its address list): the grid and point they get, the refusal of an address nothing matches, and
how they merge (by point; by grid only where the city says so)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from gridflow_intake import handlers as h
from gridflow_intake import models as intake_models
from tests.conftest import lucheng_files
from tests.credentials import SignedApi

GRID = "330302005002001"  # 建新社区第1网格: 锦绣花园 and 锦绣路 1-200
HOTEL_GRID = "330302001002002"


def _category(g) -> str:
    with g.runtimes[c.INTAKE].work() as work:
        _, j = work.active_jurisdiction()
    return j.categories[0].code


def _post(api: SignedApi, location: dict, category: str, description: str = "门口堆满垃圾"):
    body = {
        "channel": "hotline",
        "description": description,
        "category": category,
        "location": location,
    }
    return api.handle("POST", "/api/v1/reports", json.dumps(body, ensure_ascii=False).encode())


def _case_row(g, case_id: str):
    with g.engine.connect() as conn:
        return conn.execute(
            sa.select(intake_models.cases).where(intake_models.cases.c.case_id == case_id)
        ).one()


def _counts(g) -> tuple[int, int, int]:
    outbox = intake_models.messaging["outbox"]
    with g.engine.connect() as conn:
        return (
            conn.execute(sa.select(sa.func.count()).select_from(intake_models.cases)).scalar(),
            conn.execute(sa.select(sa.func.count()).select_from(intake_models.reports)).scalar(),
            conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar(),
        )


def test_an_address_finds_its_building_grid_and_point(gridflow):
    api = SignedApi(gridflow)
    category = _category(gridflow)
    answer = _post(api, {"address": "浙江省温州市鹿城区五马街三十六号华侨饭店门口"}, category)
    assert answer.status == 201, answer.body
    row = _case_row(gridflow, answer.body["case_id"])
    assert (row.area_code, row.lat, row.lon) == (HOTEL_GRID, 27.998, 120.59533)
    assert (row.street_code, row.community_code) == ("330302001", "330302001002")
    # The resident's own words are kept as the case's address.
    assert row.address == "浙江省温州市鹿城区五马街三十六号华侨饭店门口"


def test_an_address_nothing_matches_is_refused_naming_the_field_and_leaves_nothing(gridflow):
    api = SignedApi(gridflow)
    before = _counts(gridflow)
    answer = _post(api, {"address": "火星路１号"}, _category(gridflow))
    assert answer.status == 422
    [message] = answer.body["errors"]["location.address"]
    assert "no address, road" in message and "matches this address" in message
    assert _counts(gridflow) == before


def test_two_reports_of_one_compound_merge_and_a_report_at_its_point_joins_them(gridflow):
    api = SignedApi(gridflow)
    category = _category(gridflow)
    first = _post(api, {"address": "锦绣花园东门"}, category)
    assert first.status == 201, first.body
    # Another wording of the same compound: its house number on 锦绣路.
    second = _post(api, {"address": "鹿城区锦绣路88号"}, category)
    assert (second.status, second.body["outcome"]) == (200, v.OUTCOME_JOINED)
    assert second.body["case_id"] == first.body["case_id"]
    # A grid worker's point a few metres from the compound's listed point joins too.
    near = _post(api, {"lat": 28.0581, "lon": 120.58070}, category)
    assert near.body["case_id"] == first.body["case_id"]
    assert _case_row(gridflow, first.body["case_id"]).reporters == 3
    # A building of the same grid 100 m away is another place: a case of its own.
    other = _post(api, {"address": "锦绣花园3幢"}, category)
    assert other.status == 201
    # And another category at the same compound is another case.
    others = [cat.code for cat in _jurisdiction(gridflow).categories if cat.code != category]
    assert _post(api, {"address": "锦绣花园"}, others[0]).status == 201


def _jurisdiction(g):
    with g.runtimes[c.INTAKE].work() as work:
        return work.active_jurisdiction()[1]


def test_grid_code_reports_do_not_merge_unless_the_city_says_so(gridflow):
    api = SignedApi(gridflow)
    category = _category(gridflow)
    assert _post(api, {"grid_code": GRID}, category).status == 201
    assert _post(api, {"grid_code": GRID}, category).status == 201


@pytest.fixture
def merging_by_grid(gridflow):
    files = lucheng_files()
    files["settings.csv"] = "key,value\nmerge_by_grid,yes\n"
    gridflow.runtimes[c.INTAKE].jurisdictions.install(files)
    return gridflow


def test_with_merge_by_grid_grid_only_reports_merge_within_their_grid(merging_by_grid):
    g = merging_by_grid
    api = SignedApi(g)
    category = _category(g)
    # A case with a point in the grid is not joined from the grid: the point says where.
    pointed = _post(api, {"lat": 28.045, "lon": 120.580}, category)
    assert pointed.status == 201
    first = _post(api, {"grid_code": GRID}, category)
    assert first.status == 201 and first.body["case_id"] != pointed.body["case_id"]
    # The grid's code or its name: the same grid, no point: joined.
    by_code = _post(api, {"grid_code": GRID}, category)
    by_name = _post(api, {"address": "建新社区第一网格"}, category)
    assert [a.body["case_id"] for a in (by_code, by_name)] == [first.body["case_id"]] * 2
    assert by_name.body["outcome"] == v.OUTCOME_JOINED
    # Another grid, or a community named only, is not joined.
    assert _post(api, {"grid_code": "330302005002002"}, category).status == 201
    assert _post(api, {"address": "建新社区"}, category).status == 201
    assert _post(api, {"address": "建新社区"}, category).status == 201
    # A closed case is not joined: the next grid-only report opens a new one.
    with g.runtimes[c.INTAKE].work() as work:
        work.db.execute(
            sa.update(intake_models.cases)
            .where(intake_models.cases.c.case_id == first.body["case_id"])
            .values(status=v.CLOSED)
        )
    assert _post(api, {"grid_code": GRID}, category).status == 201


def test_register_report_keeps_its_shape_for_a_grid_code(gridflow):
    with gridflow.runtimes[c.INTAKE].work() as work:
        _, j = work.active_jurisdiction()
        assert h.resolve_location(j, {"grid_code": GRID}) == (GRID, None, None)
        assert h.resolve_location(j, {"address": "华侨饭店"}) == (HOTEL_GRID, 27.998, 120.59533)
        with pytest.raises(h.Rejected) as refused:
            h.resolve_location(j, {"address": "不存在的地方"})
        assert list(refused.value.errors) == ["location.address"]
