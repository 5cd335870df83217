"""The jurisdiction's address list (地址库): buildings (楼栋), residential compounds (小区) and
road sections with house-number ranges (门牌号段), each placed in a grid, and the lookup that turns
what a resident wrote ("浙江省温州市鹿城区人民西路十二号") into a grid and a point.

Standard library only. ``read_address_rows`` validates the rows of ``addresses.csv`` (the file
reader hands them over and collects the problems with file, line and column);
``AddressIndex`` is built once per jurisdiction (version) and answers ``resolve`` in
microseconds: a name is found by its first two characters, never by a scan of the whole list.

Most specific wins: a building, then a compound, then a road with a house number inside a listed
range, then the deepest area (grid, community, street, district) whose name the text carries.
Ties within one precision: the longest name, then the one written first, then the earlier line
of the file (so every replica decides alike).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gridflow_common.domain.geo import Polygon

KIND_BUILDING = "building"
KIND_COMPOUND = "compound"
KIND_ROAD = "road"
KINDS = (KIND_BUILDING, KIND_COMPOUND, KIND_ROAD)
# The clerks' own words for the kinds.
_KIND_WORDS = {
    "楼栋": KIND_BUILDING,
    "楼宇": KIND_BUILDING,
    "建筑": KIND_BUILDING,
    "小区": KIND_COMPOUND,
    "道路": KIND_ROAD,
    "路段": KIND_ROAD,
}
PARITY_ALL = "all"
PARITY_ODD = "odd"
PARITY_EVEN = "even"
PARITIES = (PARITY_ALL, PARITY_ODD, PARITY_EVEN)
_PARITY_WORDS = {"": PARITY_ALL, "全": PARITY_ALL, "单": PARITY_ODD, "双": PARITY_EVEN}
# Precision of a match, most specific first (the order a lookup prefers them in).
PRECISIONS = (KIND_BUILDING, KIND_COMPOUND, KIND_ROAD, "grid", "community", "street", "district")
_HIGHEST_NUMBER = 99_999

# ------------------------------------------------------------------------------- normalising

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
# A Chinese numeral counts a house, a building, a lane or a grid only before such a word: 五马街
# and 九山路 keep their names.
_CN_NUMBER = re.compile(r"([零〇一二两三四五六七八九十百千]+)(?=号|幢|弄|单元|室|网格)")
_NUMBERED_BUILDING = re.compile(r"(\d+)号(?:楼|幢)")
_HASH_NUMBER = re.compile(r"(\d+)#")
_NOT_A_WORD = re.compile(r"[\W_]+")
_HOUSE_NUMBER = re.compile(r"(\d{1,6})(?:号|弄)")


def chinese_number(text: str) -> int | None:
    """十二 -> 12, 一百零五 -> 105, 二〇八 -> 208 (digit by digit); None when it is not one."""
    if not text or any(ch not in _CN_DIGITS and ch not in _CN_UNITS for ch in text):
        return None
    if all(ch in _CN_DIGITS for ch in text):
        return int("".join(str(_CN_DIGITS[ch]) for ch in text))
    total, current = 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        else:
            total += (current or 1) * _CN_UNITS[ch]
            current = 0
    return total + current


def _cn_to_digits(match: re.Match[str]) -> str:
    value = chinese_number(match.group(1))
    return match.group(1) if value is None else str(value)


def normalise(text: str) -> str:
    """The form names and addresses are compared in: full-width characters folded (NFKC: ０-９,
    Ａ and the ideographic space), spaces and punctuation dropped, 栋/座 read as 幢 and 巷 as 弄,
    "3号楼" and "3#" as 3幢 and 3号, simple Chinese numerals before 号/幢/弄/单元/室/网格 as
    digits, Latin letters upper-case (A座 = a座)."""
    folded = unicodedata.normalize("NFKC", text).upper()
    folded = folded.replace("栋", "幢").replace("座", "幢").replace("巷", "弄")
    folded = _NOT_A_WORD.sub("", _HASH_NUMBER.sub(r"\1号", folded))
    folded = _CN_NUMBER.sub(_cn_to_digits, folded)
    return _NUMBERED_BUILDING.sub(r"\1幢", folded)


# ------------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class AddressEntry:
    """One row of ``addresses.csv``."""

    kind: str
    name: str
    grid_code: str
    line: int
    road: str | None = None
    number_from: int | None = None
    number_to: int | None = None
    parity: str = PARITY_ALL
    lat: float | None = None
    lon: float | None = None

    def covers(self, number: int) -> bool:
        if self.number_from is None or self.number_to is None:
            return False
        if not self.number_from <= number <= self.number_to:
            return False
        if self.parity == PARITY_ODD:
            return number % 2 == 1
        if self.parity == PARITY_EVEN:
            return number % 2 == 0
        return True


@dataclass(frozen=True)
class AddressMatch:
    """Where an address lies: the area (a grid, unless only a street or community name was
    found), a point (the listed one, else the grid's representative point; none for a match
    coarser than a grid), how precise the match is, and what matched."""

    area_code: str
    lat: float | None
    lon: float | None
    precision: str
    matched: str
    line: int | None = None


class _AreaLike(Protocol):
    # Read-only, as the frozen Area has them.
    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def polygon(self) -> Polygon: ...


# ------------------------------------------------------------------------------- reading


class _RowLike(Protocol):
    line: int

    def __getitem__(self, column: str) -> str: ...


Problem = Callable[[int, str | None, str], None]


def read_address_rows(
    rows: Iterable[_RowLike], areas: Mapping[str, _AreaLike], problem: Problem
) -> tuple[AddressEntry, ...]:
    """The entries of ``addresses.csv`` rows; each fault reported through ``problem(line,
    column, message)``: an unknown kind, a grid code that is not a grid of ``areas``, a point
    outside that grid's polygon, a bad or overlapping house-number range, a name given twice."""
    entries: list[AddressEntry] = []
    names: dict[str, int] = {}
    ranges: dict[str, list[AddressEntry]] = {}
    for row in rows:
        before = _Counter(problem)
        say = before.say
        kind_text = row["kind"].strip()
        kind = _KIND_WORDS.get(kind_text, kind_text.lower())
        if not kind_text:
            say(row.line, "kind", "is empty")
        elif kind not in KINDS:
            say(
                row.line,
                "kind",
                f"unknown kind '{kind_text}'; expected one of {', '.join(KINDS)}"
                " (楼栋, 小区, 道路)",
            )
        road = row["road"].strip() or None
        name = row["name"].strip() or (road if kind == KIND_ROAD else None)
        if name is None and kind != KIND_ROAD:  # a section without a road is told so below
            say(row.line, "name", "is empty")
        elif name is not None and len(normalise(name)) < 2:
            say(row.line, "name", f"'{name}' is too short to be found in an address")
        grid = _grid(row, areas, say)
        number_from, number_to, parity = _range(row, kind, road, say)
        lat, lon = _point(row, grid, say)
        if before.count:
            continue
        assert name is not None and grid is not None
        entry = AddressEntry(
            kind=kind,
            name=name,
            grid_code=grid.code,
            line=row.line,
            road=road,
            number_from=number_from,
            number_to=number_to,
            parity=parity,
            lat=lat,
            lon=lon,
        )
        if kind != KIND_ROAD:
            key = normalise(name)
            if key in names:
                say(row.line, "name", f"'{name}' is listed already (line {names[key]})")
                continue
            names[key] = row.line
        if road is not None and number_from is not None:
            overlap = next((e for e in ranges.get(normalise(road), ()) if _overlap(e, entry)), None)
            if overlap is not None and overlap.kind == kind:
                say(
                    row.line,
                    "from",
                    f"{road} {number_from}-{number_to} ({parity}) overlaps the range on line "
                    f"{overlap.line}; a house number must find one {kind}",
                )
                continue
            ranges.setdefault(normalise(road), []).append(entry)
        entries.append(entry)
    return tuple(entries)


class _Counter:
    def __init__(self, problem: Problem) -> None:
        self.problem, self.count = problem, 0

    def say(self, line: int, column: str | None, message: str) -> None:
        self.count += 1
        self.problem(line, column, message)


def _grid(row: _RowLike, areas: Mapping[str, _AreaLike], say: Problem) -> _AreaLike | None:
    code = row["grid_code"].strip()
    if not code:
        say(row.line, "grid_code", "is empty")
        return None
    area = areas.get(code)
    if area is None:
        say(row.line, "grid_code", f"unknown grid '{code}' (not in areas.csv)")
        return None
    if area.level != "grid":
        say(row.line, "grid_code", f"'{code}' is a {area.level}, not a grid")
        return None
    return area


def _whole(row: _RowLike, column: str, say: Problem) -> int | None:
    text = unicodedata.normalize("NFKC", row[column]).strip()
    if not text:
        return None
    value = int(text) if text.isdigit() else chinese_number(text)
    if value is None or not 1 <= value <= _HIGHEST_NUMBER:
        say(row.line, column, f"'{row[column]}' is not a house number from 1 to {_HIGHEST_NUMBER}")
        return None
    return value


def _range(
    row: _RowLike, kind: str, road: str | None, say: Problem
) -> tuple[int | None, int | None, str]:
    number_from, number_to = _whole(row, "from", say), _whole(row, "to", say)
    parity_text = row["parity"].strip().lower()
    parity = _PARITY_WORDS.get(parity_text, parity_text)
    if parity not in PARITIES:
        say(
            row.line,
            "parity",
            f"unknown parity '{row['parity']}'; expected odd, even or all (单, 双, 全)",
        )
        parity = PARITY_ALL
    given = bool(row["from"].strip() or row["to"].strip())
    if kind == KIND_ROAD:
        if road is None:
            say(row.line, "road", "is empty; a road section names its road")
        if not row["from"].strip():
            say(row.line, "from", "is empty; a road section has a house-number range")
    elif given and road is None:
        say(row.line, "road", "is empty; a house number belongs to a road")
    if number_from is not None and number_to is None and not row["to"].strip():
        number_to = number_from  # one house: "人民路 5 号"
    if number_from is not None and number_to is not None:
        if number_from > number_to:
            say(row.line, "to", f"{number_to} is below from ({number_from}): not a range")
        elif parity != PARITY_ALL and number_from == number_to and _parity(number_from) != parity:
            say(row.line, "parity", f"{number_from} is not {parity}: the range is empty")
        elif parity != PARITY_ALL and _parity(number_from) != parity:
            say(
                row.line, "from", f"{number_from} is not {parity}; the range is of {parity} numbers"
            )
        elif parity != PARITY_ALL and _parity(number_to) != parity:
            say(row.line, "to", f"{number_to} is not {parity}; the range is of {parity} numbers")
    return number_from, number_to, parity


def _parity(number: int) -> str:
    return PARITY_ODD if number % 2 else PARITY_EVEN


def _overlap(a: AddressEntry, b: AddressEntry) -> bool:
    assert a.number_from is not None and a.number_to is not None
    assert b.number_from is not None and b.number_to is not None
    low, high = max(a.number_from, b.number_from), min(a.number_to, b.number_to)
    if low > high:
        return False
    if PARITY_ALL in (a.parity, b.parity) or a.parity == b.parity:
        return any(a.covers(n) and b.covers(n) for n in range(low, min(high, low + 2) + 1))
    return False


def _point(
    row: _RowLike, grid: _AreaLike | None, say: Problem
) -> tuple[float | None, float | None]:
    texts = {c: row[c].strip() for c in ("lat", "lon")}
    if not any(texts.values()):
        return None, None
    values: dict[str, float | None] = {}
    for column, low, high in (("lat", -90.0, 90.0), ("lon", -180.0, 180.0)):
        text = texts[column]
        if not text:
            say(row.line, column, "is empty; give both lat and lon, or neither")
            values[column] = None
            continue
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not low <= value <= high:
            say(row.line, column, f"'{text}' is not a number from {low:g} to {high:g}")
            values[column] = None
            continue
        values[column] = value
    lat, lon = values["lat"], values["lon"]
    if lat is None or lon is None:
        return None, None
    if grid is not None and not grid.polygon.contains(lon, lat):
        say(
            row.line,
            "lat",
            f"the point ({lat}, {lon}) lies outside grid {grid.code} ({grid.name})",
        )
        return None, None
    return lat, lon


# ------------------------------------------------------------------------------- the index


def representative_point(polygon: Polygon) -> tuple[float, float]:
    """A point (lat, lon) inside ``polygon``: its first part's centroid when that lies inside
    (every convex grid), else the middle of the widest inside stretch of the centroid's
    latitude (an L-shaped grid's centroid may lie outside it)."""
    shell = polygon.parts[0][0]
    area = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(shell, shell[1:], strict=False):
        cross = x0 * y1 - x1 * y0
        area += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if area:
        lon, lat = cx / (3 * area), cy / (3 * area)
    else:
        b = polygon.bbox
        lon, lat = (b.min_lon + b.max_lon) / 2, (b.min_lat + b.max_lat) / 2
    if polygon.contains(lon, lat):
        return lat, lon
    crossings = sorted(
        x0 + (lat - y0) * (x1 - x0) / (y1 - y0)
        for (x0, y0), (x1, y1) in zip(shell, shell[1:], strict=False)
        if (y0 > lat) != (y1 > lat)
    )
    stretches = [
        (b - a, (a + b) / 2) for a, b in zip(crossings[::2], crossings[1::2], strict=False)
    ]
    if stretches:
        return lat, max(stretches)[1]
    return shell[0][1], shell[0][0]


_Hit = tuple[int, str, Any]  # (position in the text, normalised name, payload)


class _NameIndex:
    """Names found in a text by their first two characters: a text of n characters costs n
    dictionary lookups and a few ``startswith``, whatever the length of the list."""

    def __init__(self) -> None:
        self._by_start: dict[str, list[tuple[str, Any]]] = {}

    def add(self, name: str, payload: Any) -> None:
        self._by_start.setdefault(name[:2], []).append((name, payload))

    def find(self, text: str) -> list[_Hit]:
        hits = []
        for i in range(len(text) - 1):
            for name, payload in self._by_start.get(text[i : i + 2], ()):
                if text.startswith(name, i):
                    hits.append((i, name, payload))
        return hits


class AddressIndex:
    """The lookups of one jurisdiction's address list and area names, built once."""

    def __init__(self, entries: Sequence[AddressEntry], areas: Iterable[_AreaLike]) -> None:
        self.entries = tuple(entries)
        area_list = list(areas)
        self._areas = {a.code: a for a in area_list}
        self._points: dict[str, tuple[float, float]] = {}
        self._places = _NameIndex()
        self._roads = _NameIndex()
        self._numbered: dict[str, list[AddressEntry]] = {}
        for entry in self.entries:
            if entry.kind != KIND_ROAD:
                self._places.add(normalise(entry.name), entry)
            if entry.road is not None and entry.number_from is not None:
                road = normalise(entry.road)
                if road not in self._numbered:
                    self._roads.add(road, road)
                self._numbered.setdefault(road, []).append(entry)
        self._area_names = _NameIndex()
        for area in area_list:
            name = normalise(area.name)
            if len(name) >= 2:
                self._area_names.add(name, area)

    def point_of(self, area_code: str) -> tuple[float, float] | None:
        """The grid's representative point (lat, lon), computed once."""
        point = self._points.get(area_code)
        if point is None:
            area = self._areas.get(area_code)
            if area is None:
                return None
            point = self._points[area_code] = representative_point(area.polygon)
        return point

    def resolve(self, address: str) -> AddressMatch | None:
        """The most specific match of ``address``; None when nothing of the jurisdiction is
        named in it."""
        text = normalise(address)
        best: tuple[tuple[int, int, int, int], AddressEntry] | None = None
        for position, name, entry in self._places.find(text):
            rank = (PRECISIONS.index(entry.kind), -len(name), position, entry.line)
            if best is None or rank < best[0]:
                best = (rank, entry)
        for position, road, _ in self._roads.find(text):
            number = _HOUSE_NUMBER.match(text, position + len(road))
            if number is None:
                continue
            house = int(number.group(1))
            for entry in self._numbered[road]:
                if entry.covers(house):
                    width = (entry.number_to or 0) - (entry.number_from or 0)
                    # A listed building at that number outranks its compound, and both the
                    # road section; the narrower range first among equals.
                    rank = (PRECISIONS.index(entry.kind), width, position, entry.line)
                    if best is None or rank < best[0]:
                        best = (rank, entry)
        if best is not None:
            entry = best[1]
            lat, lon = (entry.lat, entry.lon)
            if lat is None or lon is None:
                lat, lon = self.point_of(entry.grid_code) or (None, None)
            return AddressMatch(entry.grid_code, lat, lon, entry.kind, entry.name, entry.line)
        return self._area_match(text)

    def _area_match(self, text: str) -> AddressMatch | None:
        best: tuple[tuple[int, int, int], _AreaLike] | None = None
        for position, name, area in self._area_names.find(text):
            if area.level not in PRECISIONS:
                continue
            rank = (PRECISIONS.index(area.level), -len(name), position)
            if best is None or rank < best[0]:
                best = (rank, area)
        if best is None:
            return None
        area = best[1]
        # No point: a grid's name says no more than its code (such reports are merged by grid,
        # see resolve_location), and a street or community is too wide to merge in at all.
        return AddressMatch(area.code, None, None, area.level, area.name)
