import json
import math
import os
from datetime import date, time
from pathlib import Path

import pytest

from gridflow_common.domain.calendar import TimeUnit
from gridflow_common.domain.geo import distance_m, parse_wkt_polygon
from gridflow_common.domain.jurisdiction_files import (
    FILES,
    JurisdictionError,
    Problem,
    load_folder,
    parse_jurisdiction,
)


def _lucheng_folder() -> Path:
    # GRIDFLOW_FIXTURES may name the fixtures folder or the lucheng folder inside it.
    override = os.environ.get("GRIDFLOW_FIXTURES")
    if override:
        given = Path(override)
        return given / "lucheng" if (given / "lucheng").is_dir() else given
    return Path(__file__).resolve().parents[3] / "shared/fixtures/lucheng"


LUCHENG = _lucheng_folder()


@pytest.fixture(scope="module")
def lucheng():
    return load_folder(LUCHENG)


# A made-up city that shares nothing with Lucheng: other code shapes, another continent, one
# office period, extra columns, and a MULTIPOLYGON district.
def small_city() -> dict[str, str]:
    return {
        "areas.csv": (
            "code,name,level,parent_code,polygon_wkt,remarks\n"
            'X,Xtown,district,,"MULTIPOLYGON(((10 50, 12 50, 12 52, 10 52, 10 50)),'
            ' ((20 50, 21 50, 21 51, 20 51, 20 50)))",island part\n'
            'X01,North,street,X,"POLYGON((10 50, 12 50, 12 52, 10 52, 10 50))",\n'
            'X01A,Harbour,community,X01,"POLYGON((10 50, 12 50, 12 52, 10 52, 10 50))",\n'
            'X01A1,West,grid,X01A,"POLYGON((10 50, 11 50, 11 52, 10 52, 10 50))",\n'
            'X01A2,East,grid,X01A,"POLYGON((11 50, 12 50, 12 52, 11 52, 11 50))",\n'
        ),
        "departments.csv": "code,name_zh,name_en\nroads,道路局,Roads\nparks,公园局,Parks\n",
        "units.csv": (
            "code,name,kind,department_code,area_code\n"
            "cc-X,Command,command_center,,X\n"
            "roads-X,Roads bureau,bureau,roads,X\n"
            "sc-X01,North centre,street_center,,X01\n"
            "roads-X01,Roads depot,station,roads,X01\n"
            "off-X01A,Harbour office,community_office,,X01A\n"
        ),
        "categories.csv": (
            "code,name_zh,name_en,kind,time_limit,time_unit,default_tier,lead_department,"
            "assisting_departments,keywords_zh\n"
            "ev.pothole,坑洼,Pothole,event,2,working_hours,street,roads,parks,坑洼；路面\n"
        ),
        "people.csv": (
            "id,name,role,unit_or_area,phone,email\n"
            "1,Ann,grid_worker,X01A1,+44 20 7946 0000,ann@x.example\n"
            "2,Bob,station_duty,roads-X01,,\n"
            "3,Cy,leader,roads-X01,,cy@x.example\n"
        ),
        "calendar.csv": "date,kind\n2027-01-01,holiday\n2027-01-09,workday\n",
        "office_hours.csv": "start,end\n09:00,18:00\n",
        "warning_levels.csv": (
            "colour,from_fraction,action\n"
            "green,0,none\nyellow,0.5,remind_handler\norange,1,supervise\nred,2,escalate\n"
        ),
    }


def problems_of(files) -> list[Problem]:
    with pytest.raises(JurisdictionError) as caught:
        parse_jurisdiction(files)
    return list(caught.value.problems)


def where(problems) -> set[tuple[str, int, str | None]]:
    return {(p.file, p.line, p.column) for p in problems}


def replace_row(text: str, line: int, row: str) -> str:
    lines = text.splitlines()
    lines[line - 1] = row
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- geometry


def test_polygon_with_hole_excludes_points_in_the_hole():
    donut = parse_wkt_polygon("POLYGON((0 0, 10 0, 10 10, 0 10, 0 0), (4 4, 6 4, 6 6, 4 6, 4 4))")
    assert donut.contains(2, 2)
    assert not donut.contains(5, 5)
    assert not donut.contains(11, 5)


def test_point_on_edge_shared_by_tiling_squares_belongs_to_exactly_one():
    west = parse_wkt_polygon("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0))")
    east = parse_wkt_polygon("POLYGON((1 0, 2 0, 2 1, 1 1, 1 0))")
    north = parse_wkt_polygon("POLYGON((0 1, 1 1, 1 2, 0 2, 0 1))")
    north_east = parse_wkt_polygon("POLYGON((1 1, 2 1, 2 2, 1 2, 1 1))")
    tiles = [west, east, north, north_east]
    for lon, lat in [(1, 0.5), (0.5, 1), (1, 1), (1.5, 1), (1, 1.5)]:
        assert sum(t.contains(lon, lat) for t in tiles) == 1, (lon, lat)
    # The documented rule: a border point goes to the shape east / north of it.
    assert east.contains(1, 0.5) and north.contains(0.5, 1) and north_east.contains(1, 1)


def test_point_on_a_slanted_shared_edge_belongs_to_exactly_one_triangle():
    # The two triangles walk the diagonal in opposite directions.
    lower = parse_wkt_polygon("POLYGON((0 0, 3 0, 3 7, 0 0))")
    upper = parse_wkt_polygon("POLYGON((0 0, 3 7, 0 7, 0 0))")
    for i in range(1, 50):
        lon = 3 * i / 50
        lat = 7 * i / 50
        assert lower.contains(lon, lat) != upper.contains(lon, lat), (lon, lat)


def test_multipolygon_contains_points_of_every_part():
    shape = parse_wkt_polygon(
        "MULTIPOLYGON(((0 0, 1 0, 1 1, 0 1, 0 0)), ((5 5, 6 5, 6 6, 5 6, 5 5)))"
    )
    assert shape.contains(0.5, 0.5) and shape.contains(5.5, 5.5)
    assert not shape.contains(3, 3)


@pytest.mark.parametrize(
    ("wkt", "fragment"),
    [
        ("", "empty"),
        ("POINT(1 2)", "POLYGON"),
        ("POLYGON((0 0, 1 0, 1 1, 0 1))", "not closed"),
        ("POLYGON((0 0, 1 0, 0 0))", "at least 4 points"),
        ("POLYGON((27.9 120.5, 28 120.5, 28 120.6, 27.9 120.5))", "longitude first"),
        ("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0)", "ends too early"),
        ("POLYGON((0 0, 1 0, 1 1, 0 1, 0 0)) junk", "after the closing"),
        ("POLYGON((0 0 0, 1 0 0, 1 1 0, 0 0 0))", "longitude latitude"),
        ("POLYGON((0 0; 1 0, 1 1, 0 0))", "unexpected character"),
    ],
)
def test_bad_wkt_is_refused_with_a_clear_message(wkt, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_wkt_polygon(wkt)


def test_distance_of_one_degree_of_latitude_is_about_111_km():
    assert distance_m(28.0, 120.6, 28.0, 120.6) == 0
    assert math.isclose(distance_m(28.0, 120.6, 29.0, 120.6), 111_195, rel_tol=1e-3)


# --------------------------------------------------------------------------- lucheng


def test_lucheng_loads_every_row(lucheng):
    assert lucheng.name == "鹿城区"
    assert lucheng.district_codes == ("330302",)
    assert (len(lucheng.areas), len(lucheng.units), len(lucheng.people)) == (65, 50, 116)
    assert len(lucheng.categories) == 22
    assert len(lucheng.departments) == 13


@pytest.mark.parametrize(
    ("lat", "lon", "level", "code"),
    [
        (27.995, 120.556, "community", "330302001001"),
        (27.995, 120.556, "street", "330302001"),
        (28.055, 120.637, "street", "330302104"),
        (28.05, 120.556, "street", "330302005"),
        (27.995, 120.6365, "street", "330302002"),
    ],
)
def test_locate_point_finds_the_grid_inside_the_expected_area(lucheng, lat, lon, level, code):
    grid = lucheng.locate_point(lat, lon)
    assert grid is not None and grid.level == "grid"
    assert lucheng.ancestor(grid.code, level).code == code


def test_point_outside_every_district_locates_nowhere(lucheng):
    assert lucheng.locate_point(0, 0) is None


def test_every_lucheng_grid_claims_its_own_centre(lucheng):
    for grid in (a for a in lucheng.areas if a.level == "grid"):
        box = grid.polygon.bbox
        centre = ((box.min_lat + box.max_lat) / 2, (box.min_lon + box.max_lon) / 2)
        assert lucheng.locate_point(*centre) == grid


def test_point_on_lucheng_grid_border_is_in_exactly_one_grid(lucheng):
    grids = [a for a in lucheng.areas if a.level == "grid"]
    # 120.63 is the border of streets 330302001 and 330302002; 28.04 that of 001 and 005.
    for lat, lon in [(27.995, 120.56333), (28.04, 120.60), (28.01, 120.63), (28.04, 120.63)]:
        owners = [g for g in grids if g.polygon.contains(lon, lat)]
        assert len(owners) == 1
        assert lucheng.locate_point(lat, lon) == owners[0]


def test_ancestor_walks_up_and_an_area_is_its_own_ancestor(lucheng):
    assert lucheng.ancestor("330302001001003", "district").code == "330302"
    assert lucheng.ancestor("330302001", "street").code == "330302001"
    assert lucheng.ancestor("330302001", "grid") is None
    assert lucheng.ancestor("nope", "street") is None
    with pytest.raises(ValueError):
        lucheng.ancestor("330302001", "province")


def test_units_are_found_by_department_and_area(lucheng):
    assert lucheng.station("urban_management", "330302001").code == "urban_management-330302001"
    assert lucheng.station("health", "330302001") is None
    assert lucheng.bureau("health", "330302").code == "health-330302"
    assert lucheng.command_center("330302").code == "command-330302"
    assert lucheng.street_center("330302104").code == "center-330302104"
    assert lucheng.community_office("330302005001").code == "office-330302005001"
    assert lucheng.unit("police-330302002").kind == "station"
    assert lucheng.department("justice").name_en
    assert lucheng.area("330302") and lucheng.area("nope") is None


def test_people_for_filters_by_role(lucheng):
    on_duty = lucheng.people_for("urban_management-330302001", ["station_duty"])
    assert [p.role for p in on_duty] == ["station_duty"]
    assert lucheng.people_for("command-330302", {"leader", "command_duty"})
    assert lucheng.people_for("command-330302", "leader")[0].role == "leader"
    assert lucheng.people_for("330302001001001", ["leader"]) == []


def test_categories_calendar_and_warnings_come_from_the_files(lucheng):
    light = lucheng.category("component.streetlight")
    assert (light.limit.amount, light.limit.unit) == (3, TimeUnit.WORKING_DAYS)
    assert light.keywords == ("路灯", "灯不亮", "照明")
    hazard = lucheng.category("event.public_health_hazard")
    assert (hazard.lead_department, hazard.assisting_departments) == (
        "health",
        ("environment", "police"),
    )
    assert lucheng.category("component.streetlight").lead_department == "urban_management"
    assert date(2026, 9, 20) in lucheng.calendar.workdays
    assert date(2026, 10, 1) in lucheng.calendar.holidays
    assert lucheng.calendar.office_hours == ((time(8, 30), time(12)), (time(14), time(17, 30)))
    assert [(w.colour, w.from_fraction, w.action) for w in lucheng.warning_levels] == [
        ("green", 0, "none"),
        ("yellow", 0.75, "remind_handler"),
        ("orange", 1.0, "supervise"),
        ("red", 1.5, "escalate"),
    ]


# --------------------------------------------------------------------------- any city


def test_a_city_unlike_lucheng_loads_from_an_uploaded_folder_with_bom_and_extra_columns():
    files = {f"upload/{name}": text for name, text in small_city().items()}
    files["upload/areas.csv"] = "\ufeff" + files["upload/areas.csv"]
    files["upload/readme.txt"] = "not part of the contract"
    city = parse_jurisdiction(files)
    assert city.name == "Xtown"
    assert city.locate_point(51, 11.5).code == "X01A2"
    # The island part of the MULTIPOLYGON district has no streets under it.
    assert city.locate_point(50.5, 20.5).code == "X"
    assert city.station("roads", "X01").code == "roads-X01"
    pothole = city.category("ev.pothole")
    assert pothole.keywords == ("坑洼", "路面")
    assert pothole.assisting_departments == ("parks",)
    assert city.calendar.office_hours == ((time(9), time(18)),)


def test_load_folder_reads_utf8_bytes_from_disk(tmp_path):
    for name, text in small_city().items():
        (tmp_path / name).write_text(text, encoding="utf-8-sig")
    assert load_folder(tmp_path).unit("cc-X").kind == "command_center"


def test_folder_that_is_not_utf8_is_refused_per_file(tmp_path):
    for name, text in small_city().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "departments.csv").write_bytes(
        "code,name_zh,name_en\nroads,道路局,R\n".encode("gbk")
    )
    with pytest.raises(JurisdictionError) as caught:
        load_folder(tmp_path)
    messages = [(p.file, p.message) for p in caught.value.problems]
    assert len(messages) == 1 and messages[0][0] == "departments.csv"
    assert "UTF-8" in messages[0][1]


# --------------------------------------------------------------------------- refusals


def test_missing_files_and_columns_are_all_reported():
    files = small_city()
    del files["calendar.csv"], files["people.csv"]
    files["units.csv"] = "code,name,kind,area_code\ncc-X,Command,command_center,X\n"
    assert where(problems_of(files)) == {
        ("calendar.csv", 0, None),
        ("people.csv", 0, None),
        ("units.csv", 1, "department_code"),
    }


def test_bad_folder_reports_many_problems_with_file_line_and_column():
    files = small_city()
    files["areas.csv"] = replace_row(files["areas.csv"], 3, 'X01,North,town,X,"POLYGON((10 50))"')
    files["departments.csv"] += "roads,Dup,Dup\n,空,Empty\n"
    files["categories.csv"] += (
        "ev.zero,零,Zero,event,0,hours,street,roads,,\n"
        "ev.half,半,Half,event,2.5,fortnights,county,ghosts,parks;roads;nobody,\n"
        "ev.zero,重复,Dup,thing,1,hours,street,,,\n"
    )
    problems = problems_of(files)
    assert where(problems) >= {
        ("areas.csv", 3, "level"),
        ("areas.csv", 3, "polygon_wkt"),
        ("departments.csv", 4, "code"),
        ("departments.csv", 5, "code"),
        ("categories.csv", 3, "time_limit"),
        ("categories.csv", 4, "time_limit"),
        ("categories.csv", 4, "time_unit"),
        ("categories.csv", 4, "default_tier"),
        ("categories.csv", 4, "lead_department"),
        ("categories.csv", 4, "assisting_departments"),
        ("categories.csv", 5, "code"),
        ("categories.csv", 5, "kind"),
    }
    messages = {(p.file, p.line, p.column): p.message for p in problems}
    assert "duplicate" in messages[("departments.csv", 4, "code")]
    assert "is empty" in messages[("departments.csv", 5, "code")]
    assert "town" in messages[("areas.csv", 3, "level")]
    assert "'nobody'" in " ".join(p.message for p in problems)


def test_hierarchy_problems_name_the_offending_row():
    files = small_city()
    files["areas.csv"] += (
        'X01B,Orphan,community,X09,"POLYGON((10 50, 11 50, 11 51, 10 50))",\n'
        'X01C,Skips,community,X,"POLYGON((10 50, 11 50, 11 51, 10 50))",\n'
        'Y01A3,Stray,grid,X01A,"POLYGON((10 50, 11 50, 11 51, 10 50))",\n'
        'X02,Nested,street,,"POLYGON((10 50, 11 50, 11 51, 10 50))",\n'
    )
    problems = problems_of(files)
    assert where(problems) == {
        ("areas.csv", 7, "parent_code"),  # parent unknown
        ("areas.csv", 8, "parent_code"),  # parent is a district, not a street
        ("areas.csv", 9, "code"),  # does not extend its parent's code
        ("areas.csv", 10, "parent_code"),  # a street without a parent
    }


def test_references_between_files_are_checked():
    files = small_city()
    files["units.csv"] += (
        "parks-X02,Ghost depot,station,parks,X02\n"
        "roads-X01A,Misplaced,station,roads,X01A\n"
        "trees-X01,Unknown dept,station,trees,X01\n"
        "roads-X01-bis,Second depot,station,roads,X01\n"
        "X01A1,Clash,community_office,,X01A\n"
    )
    files["people.csv"] += (
        "4,Di,grid_worker,Z99,,\n"
        "5,Ed,station_duty,cc-X,,\n"
        "6,Flo,grid_worker,X01A,,\n"
        "7,Gus,leader,X01,123,not-an-email\n"
        "8,Hal,janitor,cc-X,,\n"
    )
    problems = problems_of(files)
    assert where(problems) == {
        ("units.csv", 7, "area_code"),
        ("units.csv", 8, "area_code"),
        ("units.csv", 9, "department_code"),
        ("units.csv", 10, None),  # a second roads station in X01
        ("units.csv", 11, None),  # a second office for X01A
        ("units.csv", 11, "code"),  # same code as a grid
        ("people.csv", 5, "unit_or_area"),
        ("people.csv", 6, "unit_or_area"),
        ("people.csv", 7, "unit_or_area"),
        ("people.csv", 8, "unit_or_area"),
        ("people.csv", 8, "email"),
        ("people.csv", 9, "role"),
    }


def test_calendar_and_office_hour_problems_are_reported():
    files = small_city()
    files["calendar.csv"] += (
        "2027-13-01,holiday\n"
        "2027/01/02,holiday\n"
        "2027-01-01,workday\n"
        "2027-01-04,workday\n"
        "2027-01-10,festival\n"
    )
    files["office_hours.csv"] += "13:00,14:00\n7:30,07:00\n25:00,26:00\n"
    assert where(problems_of(files)) == {
        ("calendar.csv", 4, "date"),
        ("calendar.csv", 5, "date"),
        ("calendar.csv", 6, "date"),  # already a holiday on line 2
        ("calendar.csv", 7, "date"),  # a Monday needs no workday entry
        ("calendar.csv", 8, "kind"),
        ("office_hours.csv", 3, "start"),  # overlaps 09:00-18:00
        ("office_hours.csv", 4, "end"),
        ("office_hours.csv", 5, "start"),
        ("office_hours.csv", 5, "end"),
    }


def test_warning_levels_must_be_four_known_colours_rising_from_zero():
    files = small_city()
    files["warning_levels.csv"] = (
        "colour,from_fraction,action\n"
        "green,0.1,none\n"
        "yellow,1.2,remind_handler\n"
        "orange,1.2,panic\n"
        "purple,3,escalate\n"
    )
    problems = problems_of(files)
    assert where(problems) == {
        ("warning_levels.csv", 0, "colour"),  # red missing
        ("warning_levels.csv", 2, "from_fraction"),  # green not at 0
        ("warning_levels.csv", 4, "from_fraction"),  # orange not above yellow
        ("warning_levels.csv", 4, "action"),
        ("warning_levels.csv", 5, "colour"),
    }
    assert "red" in next(p.message for p in problems if p.line == 0)


def test_error_serialises_for_an_api_and_reads_well():
    files = small_city()
    files["categories.csv"] = replace_row(
        files["categories.csv"], 2, "ev.pothole,坑洼,Pothole,event,-1,hours,street,roads,,"
    )
    del files["people.csv"]
    with pytest.raises(JurisdictionError) as caught:
        parse_jurisdiction(files)
    dicts = caught.value.as_dicts()
    assert json.loads(json.dumps(dicts)) == dicts
    assert dicts[0] == {
        "file": "categories.csv",
        "line": 2,
        "column": "time_limit",
        "message": dicts[0]["message"],
    }
    text = str(caught.value)
    assert "2 problems" in text
    assert "categories.csv line 2, column time_limit" in text
    assert "people.csv: file is missing" in text


def test_every_contract_file_is_required():
    for name in FILES:
        files = small_city()
        del files[name]
        assert where(problems_of(files)) == {(name, 0, None)}


# --------------------------------------------------------------------------- settings.csv


def test_without_settings_csv_the_documented_defaults_apply():
    from gridflow_common.domain.jurisdiction import DEFAULT_TIME_ZONE, DEFAULT_TRIAGE_LIMIT

    j = parse_jurisdiction(small_city())
    assert (j.time_zone, j.triage_limit) == (DEFAULT_TIME_ZONE, DEFAULT_TRIAGE_LIMIT)
    assert (DEFAULT_TIME_ZONE, DEFAULT_TRIAGE_LIMIT.amount, DEFAULT_TRIAGE_LIMIT.unit) == (
        "Asia/Shanghai",
        2,
        TimeUnit.WORKING_HOURS,
    )


def test_settings_csv_sets_the_time_zone_and_the_triage_limit():
    files = {
        **small_city(),
        "city/settings.csv": (
            "key,value,comment\n"
            "time_zone,Europe/Lisbon,the city's clocks\n"
            "triage_time_limit,4,\n"
            "triage_time_unit, Hours ,natural hours\n"
        ),
    }
    j = parse_jurisdiction(files)
    assert j.time_zone == "Europe/Lisbon"
    assert (j.triage_limit.amount, j.triage_limit.unit) == (4, TimeUnit.HOURS)
    from datetime import datetime, timezone

    summer = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
    assert j.local(summer).isoformat() == "2026-07-01T13:00:00+01:00"


def test_the_working_calendar_keeps_the_citys_own_hours_in_its_zone():
    from datetime import datetime, timedelta, timezone

    from gridflow_common.domain.calendar import TimeLimit, due_at

    files = {**small_city(), "settings.csv": "key,value\ntime_zone,Europe/Lisbon\n"}
    j = parse_jurisdiction(files)
    # Office hours 09:00-18:00 are Lisbon's: a working day's limit from a summer Wednesday
    # ends at 18:00 Lisbon time (17:00 UTC) the next day, not at 18:00 in Shanghai.
    wednesday = datetime(2026, 7, 1, 10, 0, tzinfo=timezone.utc)
    due = due_at(wednesday, TimeLimit(1, TimeUnit.WORKING_DAYS), j.calendar)
    assert due.isoformat() == "2026-07-02T18:00:00+01:00"
    assert j.calendar.business_seconds_between(wednesday, wednesday + timedelta(hours=1)) == 3600
    assert (
        j.calendar.business_seconds_between(
            datetime(2026, 7, 1, 7, 0, tzinfo=timezone.utc),  # 08:00 in Lisbon: not yet open
            datetime(2026, 7, 1, 8, 30, tzinfo=timezone.utc),
        )
        == 1800
    )


def test_bad_settings_are_reported_with_file_line_and_column():
    files = {
        **small_city(),
        "settings.csv": (
            "key,value\n"
            "time_zone,Mars/Olympus_Mons\n"
            "triage_time_limit,-3\n"
            "triage_time_unit,fortnights\n"
            "colour_of_the_sky,blue\n"
            "time_zone,UTC\n"
            "time_zone,\n"
        ),
    }
    problems = problems_of(files)
    assert where(problems) == {
        ("settings.csv", 2, "value"),
        ("settings.csv", 3, "value"),
        ("settings.csv", 4, "value"),
        ("settings.csv", 5, "key"),
        ("settings.csv", 6, "key"),
        ("settings.csv", 7, "key"),  # given a third time
        ("settings.csv", 7, "value"),  # and empty
    }
    by_line = {p.line: p.message for p in problems}
    assert "IANA time zone" in by_line[2]
    assert "positive whole number" in by_line[3]
    assert "unknown time unit" in by_line[4]
    assert "unknown setting" in by_line[5]


@pytest.mark.parametrize(
    "zone", ["/etc/localtime", "../zoneinfo/UTC", "Asia\\Shanghai", "", "Not A Zone"]
)
def test_a_time_zone_that_is_not_an_iana_name_is_refused(zone):
    files = {**small_city(), "settings.csv": f"key,value\ntime_zone,{zone}\n"}
    assert where(problems_of(files)) == {("settings.csv", 2, "value")}


def test_a_triage_limit_needs_both_its_amount_and_its_unit():
    files = {**small_city(), "settings.csv": "key,value\ntriage_time_unit,working_days\n"}
    assert where(problems_of(files)) == {("settings.csv", 2, "key")}


def test_settings_csv_needs_its_header():
    files = {**small_city(), "settings.csv": "time_zone,UTC\n"}
    assert where(problems_of(files)) == {("settings.csv", 1, "key"), ("settings.csv", 1, "value")}


# --------------------------------------------------------------------------- departments.csv: sees_reporter


def test_sees_reporter_is_read_per_department_and_defaults_to_no():
    files = {
        **small_city(),
        "departments.csv": (
            "code,name_zh,name_en,sees_reporter\n"
            "roads,道路局,Roads, YES \n"
            "parks,公园局,Parks,\n"
            "water,水务,Water,0\n"
            "gas,燃气,Gas,true\n"
            "power,电力,Power,是\n"
            "post,邮政,Post,否\n"
        ),
    }
    j = parse_jurisdiction(files)
    assert {d.code: d.sees_reporter for d in j.departments} == {
        "roads": True,
        "parks": False,
        "water": False,
        "gas": True,
        "power": True,
        "post": False,
    }
    # A folder without the column (Lucheng's, every city's before it existed): nobody sees.
    assert {d.sees_reporter for d in parse_jurisdiction(small_city()).departments} == {False}


@pytest.mark.parametrize("value", ["maybe", "是的", "2", "y", "yes please", "\u0000"])
def test_a_sees_reporter_that_is_not_yes_or_no_is_refused_with_line_and_column(value):
    files = {
        **small_city(),
        "departments.csv": (
            f"code,name_zh,name_en,sees_reporter\nroads,道路局,Roads,yes\nparks,公园局,Parks,{value}\n"
        ),
    }
    problems = problems_of(files)
    # Only that cell: parks is still a known department for the files that name it.
    assert where(problems) == {("departments.csv", 3, "sees_reporter")}
    assert "yes or no" in problems[0].message


def test_sees_reporter_given_twice_is_refused_at_the_header():
    files = {
        **small_city(),
        "departments.csv": (
            "code,name_zh,name_en,sees_reporter,sees_reporter\nroads,道路局,Roads,yes,no\n"
        ),
    }
    assert ("departments.csv", 1, "sees_reporter") in where(problems_of(files))
