"""The address list (地址库): what addresses.csv says, how it is checked, and how an address a
resident wrote finds its grid and point (domain/addresses.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridflow_app.folders import LUCHENG
from gridflow_common.domain.addresses import (
    AddressIndex,
    chinese_number,
    normalise,
    representative_point,
)
from gridflow_common.domain.geo import parse_wkt_polygon
from gridflow_common.domain.jurisdiction_files import (
    JurisdictionError,
    Problem,
    load_folder,
    parse_jurisdiction,
)
from tests.conftest import SHARED

QINGYUAN_1, QINGYUAN_2, QINGYUAN_3 = "330302001001001", "330302001001002", "330302001001003"
QINGYUAN = "330302001001"
WUMA = "330302001"
JINXIU_1 = "330302005002001"


@pytest.fixture(scope="module")
def lucheng():
    return load_folder(LUCHENG)


def _files(addresses: str) -> dict[str, str]:
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(LUCHENG.glob("*.csv"))}
    files["addresses.csv"] = addresses
    return files


HEADER = "kind,name,road,from,to,parity,grid_code,lat,lon\n"


def _problems(rows: str) -> list[Problem]:
    with pytest.raises(JurisdictionError) as caught:
        parse_jurisdiction(_files(HEADER + rows))
    return caught.value.problems


# --------------------------------------------------------------------------- normalising


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("人民西路 １２ 号", "人民西路12号"),
        ("人民西路十二号", "人民西路12号"),
        ("人民西路一百零五号", "人民西路105号"),
        ("锦绣花园3栋", "锦绣花园3幢"),
        ("锦绣花园三座", "锦绣花园3幢"),
        ("锦绣花园3号楼", "锦绣花园3幢"),
        ("锦绣花园3#楼", "锦绣花园3幢"),
        ("府学巷2号", "府学弄2号"),
        ("华盟商务广场ａ座", "华盟商务广场A幢"),
        ("五马街（近解放街）", "五马街近解放街"),
        ("九山路", "九山路"),  # a numeral that counts nothing stays
        ("青园社区第一网格", "青园社区第1网格"),
    ],
)
def test_usual_variations_read_alike(written, read):
    assert normalise(written) == read


@pytest.mark.parametrize(
    ("text", "value"),
    [("十二", 12), ("二十", 20), ("一百零五", 105), ("二〇八", 208), ("两百", 200), ("十", 10)],
)
def test_simple_chinese_numerals_are_numbers(text, value):
    assert chinese_number(text) == value


def test_a_word_that_is_not_a_numeral_is_none():
    assert chinese_number("五马") is None
    assert chinese_number("") is None


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("address", "precision", "matched", "area"),
    [
        # A listed building beats its compound, its road section and every area name.
        ("浙江省温州市鹿城区锦绣花园三栋502室", "building", "锦绣花园3幢", JINXIU_1),
        ("锦绣花园 5 幢", "compound", "锦绣花园", JINXIU_1),
        # A road and a house number: the section holding the number, by parity.
        ("鹿城区人民西路十三号门口", "road", "人民西路", QINGYUAN_1),
        ("人民西路 １２ 号", "road", "人民西路", QINGYUAN_2),
        ("人民西路256号", "road", "人民西路", QINGYUAN_3),
        # A building listed at that house number beats the section.
        ("人民西路88号", "building", "温州大厦", QINGYUAN_2),
        # A compound listed at its number is found by the number as well as by its name.
        ("锦绣路88号", "compound", "锦绣花园", JINXIU_1),
        ("府学巷2号", "building", "市一医院门诊楼", "330302001002004"),
        # No listed place: the deepest area named, as before the list existed.
        ("五马街道青园社区第一网格", "grid", "青园社区第1网格", QINGYUAN_1),
        ("五马街道青园社区某处", "community", "青园社区", QINGYUAN),
        ("五马街道", "street", "五马街道", WUMA),
        # A road with no number, or a number outside every section, says no grid.
        ("五马街道人民西路", "street", "五马街道", WUMA),
        ("五马街道人民西路999号", "street", "五马街道", WUMA),
    ],
)
def test_the_most_specific_match_wins(lucheng, address, precision, matched, area):
    match = lucheng.resolve_address(address)
    assert match is not None
    assert (match.precision, match.matched, match.area_code) == (precision, matched, area)


def test_a_listed_place_gives_its_own_point_and_an_area_name_gives_none(lucheng):
    hotel = lucheng.resolve_address("华侨饭店")
    assert (hotel.lat, hotel.lon) == (27.998, 120.59533)
    grid = lucheng.area(hotel.area_code)
    assert grid.polygon.contains(hotel.lon, hotel.lat)
    community = lucheng.resolve_address("青园社区")
    assert (community.lat, community.lon) == (None, None)


def test_nothing_of_the_jurisdiction_named_is_no_match(lucheng):
    assert lucheng.resolve_address("火星路1号") is None
    assert lucheng.resolve_address("") is None
    assert lucheng.resolve_address("   ") is None


def _index(rows: str) -> AddressIndex:
    return parse_jurisdiction(_files(HEADER + rows))._address_index


def test_ties_go_to_the_longest_name_then_the_first_written_then_the_first_line():
    index = _index(
        "building,东方大厦,,,,,330302001001001,27.99,120.555\n"
        "building,东方大厦北楼,,,,,330302001001002,27.99,120.57\n"
        "building,西湖大厦,,,,,330302001001003,28.02,120.555\n"
    )
    assert index.resolve("东方大厦北楼对面").matched == "东方大厦北楼"
    assert index.resolve("西湖大厦与东方大厦之间").matched == "西湖大厦"
    assert index.resolve("东方大厦与西湖大厦之间").matched == "东方大厦"


def test_a_compound_at_a_house_number_beats_the_road_section_around_it():
    index = _index(
        "road,,解放街,1,99,all,330302001001001,27.99,120.555\n"
        "compound,乙小区,解放街,10,12,even,330302001001002,27.99,120.57\n"
    )
    assert index.resolve("解放街12号").matched == "乙小区"
    assert index.resolve("解放街13号").precision == "road"


def test_an_entry_without_a_point_stands_at_its_grids_centroid():
    index = _index("road,,解放街,1,99,all,330302001001001,,\n")
    match = index.resolve("解放街5号")
    # The grid is the rectangle 120.55-120.56333 x 27.98-28.01.
    assert match.lat == pytest.approx(27.995)
    assert match.lon == pytest.approx(120.556665)


def test_the_representative_point_of_an_l_shaped_grid_lies_inside_it():
    shape = parse_wkt_polygon("POLYGON((0 0, 10 0, 10 1, 1 1, 1 10, 0 10, 0 0))")
    lat, lon = representative_point(shape)
    assert shape.contains(lon, lat)


def test_a_folder_without_an_address_list_still_resolves_area_names():
    files = _files(HEADER)
    del files["addresses.csv"]
    j = parse_jurisdiction(files)
    assert j.addresses == ()
    assert j.resolve_address("青园社区第1网格").area_code == QINGYUAN_1
    assert j.resolve_address("锦绣花园") is None


# --------------------------------------------------------------------------- the file


def test_the_shipped_list_loads_and_every_point_lies_in_its_grid(lucheng):
    assert 40 <= len(lucheng.addresses) <= 80
    kinds = {e.kind for e in lucheng.addresses}
    assert kinds == {"building", "compound", "road"}
    for entry in lucheng.addresses:
        grid = lucheng.area(entry.grid_code)
        assert grid is not None and grid.level == "grid", entry
        assert grid.polygon.contains(entry.lon, entry.lat), entry


def test_the_shared_lucheng_is_the_shipped_one_without_its_address_list():
    """The scenarios load ../shared/fixtures/lucheng, the embedded default the shipped copy: the
    shared files are the shipped files, byte for byte; only the address list is the shipped
    copy's own (so the scenarios resolve addresses by area names, as they were written for), and
    so are its classification synonyms."""
    shared = SHARED / "fixtures" / "lucheng"
    shared_names = {p.name for p in shared.glob("*.csv")}
    shipped_names = {p.name for p in Path(LUCHENG).glob("*.csv")}
    assert shipped_names - shared_names == {"addresses.csv", "synonyms.csv"}
    for name in shared_names:
        assert (shared / name).read_bytes() == (LUCHENG / name).read_bytes(), name
    # and the list fits the shared areas
    shared_j = load_folder(shared)
    assert all(shared_j.area(e.grid_code) for e in load_folder(LUCHENG).addresses)


@pytest.mark.parametrize(
    ("row", "column", "words"),
    [
        ("building,某大厦,,,,,330302999999999,,\n", "grid_code", "unknown grid '330302999999999'"),
        ("building,某大厦,,,,,330302001001,,\n", "grid_code", "is a community, not a grid"),
        ("building,某大厦,,,,,330302001001001,28.05,120.555\n", "lat", "lies outside grid"),
        ("building,某大厦,,,,,330302001001001,27.99,\n", "lon", "give both lat and lon"),
        ("building,某大厦,,,,,330302001001001,91,120.555\n", "lat", "not a number from -90"),
        ("tower,某大厦,,,,,330302001001001,,\n", "kind", "unknown kind 'tower'"),
        (",某大厦,,,,,330302001001001,,\n", "kind", "is empty"),
        ("building,,,,,,330302001001001,,\n", "name", "is empty"),
        ("road,,解放街,20,10,all,330302001001001,,\n", "to", "not a range"),
        ("road,,解放街,2,9,odd,330302001001001,,\n", "from", "2 is not odd"),
        ("road,,解放街,1,10,odd,330302001001001,,\n", "to", "10 is not odd"),
        ("road,,解放街,1,9,sometimes,330302001001001,,\n", "parity", "unknown parity"),
        ("road,,解放街,x,9,all,330302001001001,,\n", "from", "'x' is not a house number"),
        ("road,,解放街,,,all,330302001001001,,\n", "from", "has a house-number range"),
        ("road,,,1,9,all,330302001001001,,\n", "road", "names its road"),
        ("building,某大厦,,5,,,330302001001001,,\n", "road", "belongs to a road"),
    ],
)
def test_each_bad_row_is_named_by_file_line_and_column(row, column, words):
    problems = _problems("building,好大厦,,,,,330302001001001,,\n" + row)
    assert [(p.file, p.line, p.column) for p in problems] == [("addresses.csv", 3, column)]
    assert words in problems[0].message, problems[0].message


def test_overlapping_sections_and_a_name_listed_twice_are_refused():
    problems = _problems(
        "road,,解放街,1,99,odd,330302001001001,,\n"
        "road,,解放街,2,98,even,330302001001002,,\n"
        "road,,解放街,51,151,odd,330302001001003,,\n"
        "compound,锦绣花园,,,,,330302001001001,,\n"
        "compound,锦绣 花园,,,,,330302001001002,,\n"
    )
    assert [(p.line, p.column) for p in problems] == [(4, "from"), (6, "name")]
    assert "overlaps the range on line 2" in problems[0].message
    assert "listed already (line 5)" in problems[1].message


def test_clerks_words_for_kinds_and_parities_are_taken():
    index = _index("道路,,解放街,1,99,单,330302001001001,,\n小区,甲小区,,,,,330302001001002,,\n")
    assert index.resolve("解放街3号").precision == "road"
    assert index.resolve("解放街4号") is None
    assert index.resolve("甲小区").precision == "compound"


def test_merge_by_grid_is_a_yes_or_no_setting():
    files = _files(HEADER)
    files["settings.csv"] = "key,value\nmerge_by_grid,是\n"
    assert parse_jurisdiction(files).merge_by_grid is True
    assert parse_jurisdiction(_files(HEADER)).merge_by_grid is False
    files["settings.csv"] = "key,value\nmerge_by_grid,maybe\n"
    with pytest.raises(JurisdictionError) as caught:
        parse_jurisdiction(files)
    assert [(p.file, p.line, p.column) for p in caught.value.problems] == [
        ("settings.csv", 2, "value")
    ]


@pytest.mark.parametrize(
    "hostile",
    [
        "\x00\x00人民西路\x0012号",
        "🏠" * 500,
        "人民西路" + "9" * 400 + "号",
        "号" * 2000,
        "十" * 300 + "号",
    ],
)
def test_hostile_addresses_are_answered_not_crashed_on(lucheng, hostile):
    match = lucheng.resolve_address(hostile)
    assert match is None or lucheng.area(match.area_code) is not None
