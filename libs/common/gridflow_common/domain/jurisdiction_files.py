"""The jurisdiction's interchange format: a folder of CSV files (``shared/fixtures/README.md``)
read and validated into a ``Jurisdiction``.

Cities keep this in spreadsheets. The folder is accepted or refused as a whole: a half-loaded
jurisdiction would route cases to units that do not exist, so every problem is collected and
reported together, each with the file, spreadsheet row and column a clerk needs to fix it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, time
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gridflow_common.domain import addresses, assessment, notify_plan, synonyms_file, vocabulary
from gridflow_common.domain.calendar import (
    TimeLimit,
    TimeUnit,
    WarningLevel,
    WorkingCalendar,
    parse_time_unit,
)
from gridflow_common.domain.credentials import reference_problem
from gridflow_common.domain.geo import parse_wkt_polygon
from gridflow_common.domain.jurisdiction import (
    _PARENT_LEVEL,
    _ROLE_UNIT_KINDS,
    _UNIT_KINDS_WITH_DEPARTMENT,
    _UNIT_LEVEL,
    CALENDAR_KINDS,
    CATEGORY_KINDS,
    CODE_FORBIDDEN,
    DEFAULT_TIME_ZONE,
    LEVELS,
    AdapterConfig,
    Area,
    Category,
    Department,
    Jurisdiction,
    Person,
    Unit,
    _slot,
)
from gridflow_common.domain.vocabulary import (
    COLOURS,
    ROLES,
    TIERS,
    UNIT_KINDS,
    WARNING_ACTIONS,
)

FILES: dict[str, tuple[str, ...]] = {
    "areas.csv": ("code", "name", "level", "parent_code", "polygon_wkt"),
    "departments.csv": ("code", "name_zh", "name_en"),
    "units.csv": ("code", "name", "kind", "department_code", "area_code"),
    "categories.csv": (
        "code",
        "name_zh",
        "name_en",
        "kind",
        "time_limit",
        "time_unit",
        "default_tier",
        "lead_department",
        "assisting_departments",
        "keywords_zh",
    ),
    "people.csv": ("id", "name", "role", "unit_or_area", "phone", "email"),
    "calendar.csv": ("date", "kind"),
    "office_hours.csv": ("start", "end"),
    "warning_levels.csv": ("colour", "from_fraction", "action"),
}
# Columns a file may leave out (an older city's folder predates them): each takes its default.
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    # Whether the department may see a case's reporters whole while it holds the case
    # (domain.privacy.may_see_reporter); empty or absent = no.
    "departments.csv": ("sees_reporter",),
    # An adapter that needs none of these leaves them out.
    "adapters.csv": ("endpoint", "credential_ref", "status_map", "options"),
    # A building or compound may give its road and house number(s), and a point of its own.
    "addresses.csv": ("road", "from", "to", "parity", "lat", "lon"),
}
# The clerks who keep these spreadsheets write 是/否 as often as yes/no.
_YES = ("yes", "true", "1", "是")
_NO = ("no", "false", "0", "否", "")
# Files a folder may leave out: each setting then takes its documented default.
OPTIONAL_FILES: dict[str, tuple[str, ...]] = {
    "settings.csv": ("key", "value"),
    # Which department adapter serves a department or a unit (absent: AMQP for every unit).
    "adapters.csv": ("code", "adapter"),
    # The weights of the assessment's composite score (absent: assessment.DEFAULT_WEIGHTS).
    "assessment.csv": ("weight", "value"),
    # Hotspot thresholds and windows per category and level (absent: the defaults).
    "hotspots.csv": ("category", "level", "threshold", "window_minutes"),
    # Channels per person and the city's own message templates (domain.notify_plan).
    "notify.csv": ("person", "channels"),
    "notify_templates.csv": ("kind", "template"),
    # The city's routing rules (YAML, not a table: domain.rules; absent: the taxonomy alone).
    "rules.yaml": (),
    # The city's words for classification (synonyms_file; absent: the built-in ones only).
    synonyms_file.FILE: synonyms_file.COLUMNS,
    # The address list: buildings, compounds and road sections -> grid and point (absent:
    # addresses resolve by street, community and grid names only). domain/addresses.py.
    "addresses.csv": ("kind", "name", "grid_code"),
}
SETTING_TIME_ZONE = "time_zone"
SETTING_TRIAGE_TIME_LIMIT = "triage_time_limit"
SETTING_TRIAGE_TIME_UNIT = "triage_time_unit"
# Whether reports located only by a grid (no point) merge within it (docs/addresses.md).
SETTING_MERGE_BY_GRID = "merge_by_grid"
SETTING_QUIET_HOURS = "quiet_hours"
SETTING_URGENT_CATEGORIES = "urgent_categories"
SETTINGS = (
    SETTING_TIME_ZONE,
    SETTING_TRIAGE_TIME_LIMIT,
    SETTING_TRIAGE_TIME_UNIT,
    SETTING_MERGE_BY_GRID,
    SETTING_QUIET_HOURS,
    SETTING_URGENT_CATEGORIES,
)
_ALL_FILES = {**FILES, **OPTIONAL_FILES}

_LIST_SEPARATOR = re.compile(r"[;；]")  # Chinese keyboards type the full-width semicolon
_PAIR_SEPARATOR = re.compile(r"[:：]")  # and the full-width colon
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_INTEGER = re.compile(r"^\+?\d+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[\d\s()\-]{3,}$")
# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One reason to refuse a folder. ``line`` is the spreadsheet row (header = 1, 0 = the
    file as a whole); ``column`` is the contract's column name, or None for a whole row/file."""

    file: str
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f" line {self.line}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


class JurisdictionError(ValueError):
    def __init__(self, problems: Iterable[Problem]) -> None:
        order = {name: i for i, name in enumerate(_ALL_FILES)}
        # Stable sort: problems on one row keep the order they were found in.
        self.problems: tuple[Problem, ...] = tuple(
            sorted(problems, key=lambda p: (order.get(p.file, len(order)), p.file, p.line))
        )
        super().__init__(str(self))

    def as_dicts(self) -> list[dict[str, Any]]:
        return [
            {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
            for p in self.problems
        ]

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"jurisdiction refused: {count} problem{'s' if count != 1 else ''}"
        return "\n  ".join([head, *(str(p) for p in self.problems)])


# --------------------------------------------------------------------------- loading


def load_folder(path: str | Path) -> Jurisdiction:
    folder = Path(path)
    if not folder.is_dir():
        raise NotADirectoryError(f"jurisdiction folder not found: {folder}")
    files: dict[str, str | bytes] = {}
    for name in _ALL_FILES:
        candidate = folder / name
        if candidate.is_file():
            files[name] = candidate.read_bytes()
    return parse_jurisdiction(files)


def parse_jurisdiction(files: Mapping[str, str | bytes]) -> Jurisdiction:
    """Validate and build a jurisdiction from file name -> content (text, or UTF-8 bytes).

    Keys may carry a folder prefix (``lucheng/areas.csv``), as browsers send for an uploaded
    folder. Files outside the contract are ignored. Raises JurisdictionError listing every
    problem found.
    """
    return _Loader(files).load()


@dataclass
class _Row:
    line: int
    cells: dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.cells.get(column, "")


class _Loader:
    def __init__(self, files: Mapping[str, str | bytes]) -> None:
        self.problems: list[Problem] = []
        self.texts: dict[str, str] = {}
        self.unreadable: set[str] = set()
        for key, content in files.items():
            name = re.split(r"[\\/]", key)[-1]
            if name not in _ALL_FILES:
                continue
            if name in self.texts or name in self.unreadable:
                self.add(name, 0, None, f"given twice (again as {key!r})")
                continue
            if isinstance(content, bytes):
                try:
                    content = content.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self.add(
                        name,
                        0,
                        None,
                        f"not UTF-8 text (bad byte at offset {exc.start}); "
                        "save the spreadsheet as 'CSV UTF-8'",
                    )
                    self.unreadable.add(name)
                    continue
            self.texts[name] = content.removeprefix("\ufeff")
        # Codes seen in each file, even on rows with other problems, so that one bad cell does
        # not also surface as "unknown code" everywhere it is referenced. None = file unusable.
        self.area_levels: dict[str, str | None] | None = None
        self.department_codes: set[str] | None = None
        self.unit_kinds: dict[str, str | None] | None = None
        self.notify_settings: dict[str, tuple[str, int]] = {}

    def add(self, file: str, line: int, column: str | None, message: str) -> None:
        self.problems.append(Problem(file, line, column, message))

    # ---- generic table reading

    def table(self, name: str) -> list[_Row] | None:
        columns = _ALL_FILES[name]
        text = self.texts.get(name)
        if text is None:
            if name not in self.unreadable and name not in OPTIONAL_FILES:
                self.add(name, 0, None, "file is missing")
            return None
        records: list[tuple[int, list[str]]] = []
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            # Counting records, not physical lines, matches the row numbers a spreadsheet shows
            # even when a quoted cell spans several lines.
            for number, record in enumerate(reader, start=1):
                records.append((number, record))
        except csv.Error as exc:
            self.add(name, len(records) + 1, None, f"not valid CSV: {exc}")
            return None
        if not records or not any(cell.strip() for cell in records[0][1]):
            self.add(name, 1, None, f"header row is missing; expected {', '.join(columns)}")
            return None
        header = [cell.strip().lower() for cell in records[0][1]]
        missing = [c for c in columns if c not in header]
        for column in missing:
            self.add(name, 1, column, f"required column '{column}' is missing")
        optional = tuple(c for c in OPTIONAL_COLUMNS.get(name, ()) if c in header)
        for column in (*columns, *optional):
            if header.count(column) > 1:
                self.add(name, 1, column, f"column '{column}' appears more than once")
                missing.append(column)
        if missing:
            return None
        index = {c: header.index(c) for c in (*columns, *optional)}
        rows = []
        for number, record in records[1:]:
            # Spreadsheets export trailing rows of bare commas; they are not data.
            if not any(cell.strip() for cell in record):
                continue
            cells = {c: record[i].strip() if i < len(record) else "" for c, i in index.items()}
            rows.append(_Row(number, cells))
        return rows

    def required(self, file: str, row: _Row, column: str) -> str | None:
        value = row[column]
        if not value:
            self.add(file, row.line, column, "is empty")
            return None
        return value

    def one_of(
        self, file: str, row: _Row, column: str, allowed: tuple[str, ...], what: str
    ) -> str | None:
        value = self.required(file, row, column)
        if value is not None and value not in allowed:
            self.add(
                file,
                row.line,
                column,
                f"unknown {what} '{value}'; expected one of {', '.join(allowed)}",
            )
            return None
        return value

    def routing_word(self, file: str, row: _Row, column: str) -> str | None:
        """A unit or department code: required, and usable as a word of an AMQP routing key."""
        value = self.required(file, row, column)
        if value is not None and CODE_FORBIDDEN.search(value):
            self.add(
                file,
                row.line,
                column,
                f"'{value}' contains '.', '*', '#' or a space; unit and department codes name "
                "AMQP routing keys, where those characters mean something else",
            )
        # Kept even when refused (the folder is refused anyway), so that rows pointing at it
        # are not also reported as pointing at an unknown code.
        return value

    def yes_or_no(self, file: str, row: _Row, column: str) -> bool | None:
        """An optional yes/no cell: empty is no; None (and a problem) for anything else."""
        value = row[column].strip().lower()
        if value in _YES:
            return True
        if value in _NO:
            return False
        self.add(
            file,
            row.line,
            column,
            f"'{row[column]}' is neither yes nor no; write yes or no, 是 or 否 (or leave it "
            "empty for no)",
        )
        return None

    def unique(self, file: str, row: _Row, column: str, value: str, seen: dict[str, int]) -> bool:
        if value in seen:
            self.add(
                file,
                row.line,
                column,
                f"duplicate {column} '{value}' (first on line {seen[value]})",
            )
            return False
        seen[value] = row.line
        return True

    # ---- the files, in dependency order

    def load(self) -> Jurisdiction:
        areas = self.load_areas()
        departments = self.load_departments()
        units = self.load_units()
        adapters = self.load_adapters()
        categories = self.load_categories()
        people = self.load_people()
        before_calendar = len(self.problems)
        calendar_dates = self.load_calendar()
        office_hours = self.load_office_hours()
        calendar_ok = len(self.problems) == before_calendar
        warning_levels = self.load_warning_levels()
        settings = self.load_settings()
        weights = self.load_assessment()
        hotspot_rules = self.load_hotspots(categories)
        synonyms = synonyms_file.load_synonyms(self)
        address_list = self.load_addresses(areas)
        plan = notify_plan.load(self.texts, self.notify_settings, people, categories, self.add)
        zone = ZoneInfo(settings.get("time_zone", DEFAULT_TIME_ZONE))

        calendar: WorkingCalendar | None = None
        # Only a clean calendar is handed over: its own checks would repeat ours less precisely.
        if calendar_ok and calendar_dates is not None and office_hours is not None:
            holidays, workdays = calendar_dates
            try:
                calendar = WorkingCalendar(
                    holidays=holidays, workdays=workdays, office_hours=office_hours, zone=zone
                )
            except (TypeError, ValueError) as exc:
                self.add("calendar.csv", 0, None, f"working calendar refused: {exc}")

        if self.problems or calendar is None or warning_levels is None:
            raise JurisdictionError(self.problems)
        return self.load_rules(
            Jurisdiction(
                areas=tuple(areas),
                departments=tuple(departments),
                units=tuple(units),
                categories=tuple(categories),
                people=tuple(people),
                calendar=calendar,
                warning_levels=warning_levels,
                adapters=tuple(config for config, _ in adapters),
                adapter_lines={config.code: line for config, line in adapters},
                assessment_weights=weights,
                hotspot_rules=hotspot_rules,
                synonyms=synonyms,
                addresses=address_list,
                notify_plan=plan,
                **settings,
            )
        )

    def load_rules(self, j: Jurisdiction) -> Jurisdiction:
        """``rules.yaml`` (optional): checked against the rest of the folder, so read last."""
        text = self.texts.get("rules.yaml")
        if text is None:
            return j
        # The YAML composer is the boundary's; the rule language itself is domain.rules.
        from gridflow_common.rules_file import parse_rules

        rule_set, problems = parse_rules(text, j)
        for p in problems:
            self.add("rules.yaml", p.line, p.rule_id and f"rule {p.rule_id}", p.message)
        if self.problems:
            raise JurisdictionError(self.problems)
        return dataclasses.replace(j, rules=rule_set)

    def load_settings(self) -> dict[str, Any]:
        """``settings.csv`` (optional): one ``key,value`` row per setting; absent ones default."""
        file = "settings.csv"
        rows = self.table(file) or []
        seen: dict[str, int] = {}
        values: dict[str, tuple[str, int]] = {}
        for row in rows:
            key = self.one_of(file, row, "key", SETTINGS, "setting")
            value = self.required(file, row, "value")
            if key is not None and self.unique(file, row, "key", key, seen) and value:
                values[key] = (value, row.line)
        # Notify's settings go to its own parser (domain.notify_plan.load).
        self.notify_settings = {
            k: values.pop(k)
            for k in (SETTING_QUIET_HOURS, SETTING_URGENT_CATEGORIES)
            if k in values
        }
        settings: dict[str, Any] = {}
        if SETTING_TIME_ZONE in values:
            zone, line = values[SETTING_TIME_ZONE]
            if _valid_zone(zone):
                settings["time_zone"] = zone
            else:
                self.add(
                    file, line, "value", f"'{zone}' is not an IANA time zone (e.g. Asia/Shanghai)"
                )
        if SETTING_MERGE_BY_GRID in values:
            text, line = values[SETTING_MERGE_BY_GRID]
            answer = self.yes_or_no(file, _Row(line, {"value": text}), "value")
            if answer is not None:
                settings["merge_by_grid"] = answer
        amount = values.get(SETTING_TRIAGE_TIME_LIMIT)
        unit = values.get(SETTING_TRIAGE_TIME_UNIT)
        if (amount is None) != (unit is None):
            _, line = amount or unit  # type: ignore[misc]
            wanted = SETTING_TRIAGE_TIME_UNIT if unit is None else SETTING_TRIAGE_TIME_LIMIT
            self.add(
                file, line, "key", f"needs a '{wanted}' row too: a limit has an amount and a unit"
            )
        elif amount is not None and unit is not None:
            parsed_amount: int | None = None
            if not _INTEGER.match(amount[0]) or int(amount[0]) <= 0:
                self.add(file, amount[1], "value", f"'{amount[0]}' is not a positive whole number")
            else:
                parsed_amount = int(amount[0])
            parsed_unit: TimeUnit | None = None
            try:
                parsed_unit = parse_time_unit(unit[0])
            except ValueError as exc:
                self.add(file, unit[1], "value", str(exc))
            if parsed_amount is not None and parsed_unit is not None:
                settings["triage_limit"] = TimeLimit(parsed_amount, parsed_unit)
        return settings

    def load_assessment(self) -> assessment.Weights:
        """``assessment.csv`` (optional): one ``weight,value`` row per part of the score
        (``assessment.WEIGHT_KEYS``), a number from 0 to 1000; a part left out keeps its
        default weight."""
        file = "assessment.csv"
        seen: dict[str, int] = {}
        given: dict[str, float] = {}
        for row in self.table(file) or []:
            key = self.one_of(file, row, "weight", assessment.WEIGHT_KEYS, "weight")
            text = self.required(file, row, "value")
            if key is None or text is None or not self.unique(file, row, "weight", key, seen):
                continue
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or not 0 <= value <= 1000:
                self.add(file, row.line, "value", f"'{text}' is not a number from 0 to 1000")
                continue
            given[key] = value
        weights = assessment.Weights(**given)
        if seen and not any(weights.as_dict().values()):
            self.add(file, 0, None, "every weight is 0; at least one must count")
        return weights

    def load_hotspots(self, categories: list[Category]) -> assessment.HotspotRules:
        """``hotspots.csv`` (optional): ``category`` (a code, or ``*`` for every category
        without a row of its own), ``level`` (grid or community), ``threshold`` (new cases; 0
        turns the level off) and ``window_minutes`` (1 to 10080, a week)."""
        file = "hotspots.csv"
        known = {c.code for c in categories}
        seen: dict[str, int] = {}
        rules: list[assessment.HotspotRule] = []
        for row in self.table(file) or []:
            category = self.required(file, row, "category")
            if (
                category is not None
                and category != assessment.ANY_CATEGORY
                and known
                and (category not in known)
            ):
                self.add(file, row.line, "category", f"unknown category '{category}'")
                category = None
            level = self.one_of(file, row, "level", assessment.HOTSPOT_LEVELS, "level")
            threshold = self.whole_number(file, row, "threshold", 0, 100_000)
            minutes = self.whole_number(file, row, "window_minutes", 1, 7 * 24 * 60)
            if None in (category, level, threshold, minutes):
                continue
            assert category is not None and level is not None
            if not self.unique(file, row, "category", f"{category} at level {level}", seen):
                continue
            rules.append(assessment.HotspotRule(level, threshold or 0, minutes or 0, category))
        return assessment.HotspotRules(tuple(rules))

    def load_addresses(self, areas: list[Area]) -> tuple[addresses.AddressEntry, ...]:
        """``addresses.csv`` (optional), read and checked by ``domain.addresses``."""
        file = "addresses.csv"
        return addresses.read_address_rows(
            self.table(file) or [],
            {a.code: a for a in areas},
            lambda line, column, message: self.add(file, line, column, message),
        )

    def whole_number(self, file: str, row: _Row, column: str, low: int, high: int) -> int | None:
        text = self.required(file, row, column)
        if text is None:
            return None
        if not _INTEGER.match(text) or not low <= int(text) <= high:
            self.add(file, row.line, column, f"'{text}' is not a whole number from {low} to {high}")
            return None
        return int(text)

    def load_areas(self) -> list[Area]:
        file = "areas.csv"
        rows = self.table(file)
        if rows is None:
            return []
        levels: dict[str, str | None] = {}
        seen: dict[str, int] = {}
        parsed = []
        for row in rows:
            code = self.required(file, row, "code")
            name = self.required(file, row, "name")
            level = self.one_of(file, row, "level", LEVELS, "level")
            polygon = None
            wkt = self.required(file, row, "polygon_wkt")
            if wkt is not None:
                try:
                    polygon = parse_wkt_polygon(wkt)
                except ValueError as exc:
                    self.add(file, row.line, "polygon_wkt", str(exc))
            if code is None or not self.unique(file, row, "code", code, seen):
                continue
            levels[code] = level
            parsed.append((row, code, name, level, polygon))
        self.area_levels = levels

        areas = []
        for row, code, name, level, polygon in parsed:
            parent = row["parent_code"] or None
            if level == "district":
                if parent is not None:
                    self.add(
                        file,
                        row.line,
                        "parent_code",
                        "a district is the top of the hierarchy; leave parent_code empty",
                    )
            elif level is not None:
                expected = _PARENT_LEVEL[level]
                if parent is None:
                    self.add(
                        file, row.line, "parent_code", f"is empty; a {level} needs its {expected}"
                    )
                elif parent not in levels:
                    self.add(file, row.line, "parent_code", f"unknown area '{parent}'")
                else:
                    actual = levels[parent]
                    if actual is not None and actual != expected:
                        self.add(
                            file,
                            row.line,
                            "parent_code",
                            f"'{parent}' is a {actual}; "
                            f"the parent of a {level} must be a {expected}",
                        )
                    if not (code.startswith(parent) and len(code) > len(parent)):
                        self.add(
                            file,
                            row.line,
                            "code",
                            f"code '{code}' does not extend its parent's code '{parent}'",
                        )
            if name is not None and level is not None and polygon is not None:
                areas.append(Area(code, name, level, parent, polygon))
        if rows and "district" not in levels.values():
            self.add(file, 0, "level", "no district: the hierarchy needs at least one")
        return areas

    def load_departments(self) -> list[Department]:
        file = "departments.csv"
        rows = self.table(file)
        if rows is None:
            return []
        seen: dict[str, int] = {}
        departments = []
        for row in rows:
            code = self.routing_word(file, row, "code")
            name_zh = self.required(file, row, "name_zh")
            if code is None or not self.unique(file, row, "code", code, seen):
                continue
            sees_reporter = self.yes_or_no(file, row, "sees_reporter")
            if name_zh is not None and sees_reporter is not None:
                departments.append(Department(code, name_zh, row["name_en"], sees_reporter))
        self.department_codes = set(seen)
        return departments

    def check_department(self, file: str, row: _Row, column: str, code: str) -> bool:
        if self.department_codes is not None and code not in self.department_codes:
            self.add(file, row.line, column, f"unknown department '{code}'")
            return False
        return True

    def load_units(self) -> list[Unit]:
        file = "units.csv"
        rows = self.table(file)
        if rows is None:
            return []
        seen: dict[str, int] = {}
        slots: dict[tuple[str, str | None, str], tuple[str, int]] = {}
        kinds: dict[str, str | None] = {}
        units = []
        for row in rows:
            code = self.routing_word(file, row, "code")
            name = self.required(file, row, "name")
            kind = self.one_of(file, row, "kind", UNIT_KINDS, "unit kind")
            area_code = self.required(file, row, "area_code")
            department = row["department_code"] or None

            if area_code is not None and self.area_levels is not None:
                if area_code not in self.area_levels:
                    self.add(file, row.line, "area_code", f"unknown area '{area_code}'")
                    area_code = None
                else:
                    level = self.area_levels[area_code]
                    if kind is not None and level is not None and level != _UNIT_LEVEL[kind]:
                        self.add(
                            file,
                            row.line,
                            "area_code",
                            f"'{area_code}' is a {level}; "
                            f"a {kind} belongs to a {_UNIT_LEVEL[kind]}",
                        )
            if department is None:
                if kind in _UNIT_KINDS_WITH_DEPARTMENT:
                    self.add(
                        file,
                        row.line,
                        "department_code",
                        f"is empty; a {kind} belongs to a department",
                    )
            else:
                self.check_department(file, row, "department_code", department)

            if kind is not None and area_code is not None:
                slot = _slot(kind, department, area_code)
                if slot in slots:
                    other, line = slots[slot]
                    self.add(
                        file,
                        row.line,
                        None,
                        f"a second {kind} for the same "
                        f"{'department and ' if slot[1] else ''}area "
                        f"(first is '{other}' on line {line})",
                    )
                elif code is not None:
                    slots[slot] = (code, row.line)

            if code is None or not self.unique(file, row, "code", code, seen):
                continue
            kinds[code] = kind
            if self.area_levels is not None and code in self.area_levels:
                # people.csv points at "a unit or an area" by code alone.
                self.add(
                    file, row.line, "code", f"'{code}' is also an area code; unit codes must differ"
                )
            if name is not None and kind is not None and area_code is not None:
                units.append(Unit(code, name, kind, department, area_code))
        self.unit_kinds = kinds
        return units

    def load_adapters(self) -> list[tuple[AdapterConfig, int]]:
        """``adapters.csv`` (optional): one row per department or unit served by an adapter
        other than the default, with where to reach it and how its words map to ours."""
        file = "adapters.csv"
        rows = self.table(file)
        if rows is None:
            return []
        seen: dict[str, int] = {}
        configs = []
        for row in rows:
            code = self.required(file, row, "code")
            if code is not None and not self.known_unit_or_department(code):
                self.add(file, row.line, "code", f"unknown department or unit '{code}'")
                code = None
            adapter = self.required(file, row, "adapter")
            if adapter is not None and not _ADAPTER_NAME.match(adapter):
                self.add(file, row.line, "adapter", f"'{adapter}' is not an adapter name")
                adapter = None
            credential_ref = row["credential_ref"] or None
            if credential_ref is not None:
                problem = reference_problem(credential_ref)
                if problem:
                    # The cell may hold a pasted secret: never repeat it in the message.
                    self.add(file, row.line, "credential_ref", problem)
                    credential_ref = None
            status_map = self.status_map(file, row)
            options = self.json_object(file, row, "options")
            if code is None or not self.unique(file, row, "code", code, seen):
                continue
            if adapter is not None and status_map is not None and options is not None:
                config = AdapterConfig(
                    code=code,
                    adapter=adapter,
                    endpoint=row["endpoint"] or None,
                    credential_ref=credential_ref,
                    status_map=status_map,
                    options=options,
                )
                configs.append((config, row.line))
        return configs

    def known_unit_or_department(self, code: str) -> bool:
        # A file that could not be read is reported there; its codes are not doubted here.
        if self.department_codes is None or self.unit_kinds is None:
            return True
        return code in self.department_codes or code in self.unit_kinds

    def status_map(self, file: str, row: _Row) -> dict[str, str] | None:
        """``word:status;word:status`` (full-width ；and ：too): the department's own words
        -> Gridflow's update statuses. Read at parse time: the vocabulary may grow."""
        statuses = vocabulary.UPDATE_STATUSES
        mapping: dict[str, str] = {}
        ok = True
        for item in _split_list(row["status_map"]):
            parts = _PAIR_SEPARATOR.split(item, maxsplit=1)
            word, status = (parts[0].strip(), parts[1].strip()) if len(parts) == 2 else ("", "")
            if not word or not status:
                self.add(
                    file, row.line, "status_map", f"'{item}' is not word:status (受理:accepted)"
                )
                ok = False
            elif status not in statuses:
                self.add(
                    file,
                    row.line,
                    "status_map",
                    f"'{word}' maps to unknown status '{status}'; expected one of "
                    f"{', '.join(statuses)}",
                )
                ok = False
            elif word in mapping:
                self.add(file, row.line, "status_map", f"the word '{word}' is mapped twice")
                ok = False
            else:
                mapping[word] = status
        return mapping if ok else None

    def json_object(self, file: str, row: _Row, column: str) -> dict[str, Any] | None:
        text = row[column]
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            self.add(file, row.line, column, f"not valid JSON: {exc}")
            return None
        if not isinstance(value, dict):
            self.add(file, row.line, column, 'must be a JSON object ({"key": value, ...})')
            return None
        return value

    def load_categories(self) -> list[Category]:
        file = "categories.csv"
        rows = self.table(file)
        if rows is None:
            return []
        seen: dict[str, int] = {}
        categories = []
        for row in rows:
            code = self.required(file, row, "code")
            name_zh = self.required(file, row, "name_zh")
            kind = self.one_of(file, row, "kind", CATEGORY_KINDS, "category kind")
            tier = self.one_of(file, row, "default_tier", TIERS, "tier")

            amount = None
            raw_amount = self.required(file, row, "time_limit")
            if raw_amount is not None:
                if not _INTEGER.match(raw_amount) or int(raw_amount) <= 0:
                    self.add(
                        file,
                        row.line,
                        "time_limit",
                        f"'{raw_amount}' is not a positive whole number",
                    )
                else:
                    amount = int(raw_amount)
            unit = None
            raw_unit = self.required(file, row, "time_unit")
            if raw_unit is not None:
                try:
                    unit = parse_time_unit(raw_unit)
                except ValueError as exc:
                    self.add(file, row.line, "time_unit", str(exc))

            lead = row["lead_department"] or None
            if lead is not None:
                self.check_department(file, row, "lead_department", lead)
            assisting: list[str] = []
            for item in _split_list(row["assisting_departments"]):
                if item == lead:
                    self.add(
                        file,
                        row.line,
                        "assisting_departments",
                        f"'{item}' is already the lead department",
                    )
                elif item in assisting:
                    self.add(file, row.line, "assisting_departments", f"'{item}' is listed twice")
                elif self.check_department(file, row, "assisting_departments", item):
                    assisting.append(item)
            keywords = tuple(dict.fromkeys(_split_list(row["keywords_zh"])))

            if code is None or not self.unique(file, row, "code", code, seen):
                continue
            if None not in (name_zh, kind, tier, amount, unit):
                assert name_zh and kind and tier and amount and unit  # narrows types for mypy
                categories.append(
                    Category(
                        code=code,
                        name_zh=name_zh,
                        name_en=row["name_en"],
                        kind=kind,
                        limit=TimeLimit(amount, unit),
                        default_tier=tier,
                        lead_department=lead,
                        assisting_departments=tuple(assisting),
                        keywords=keywords,
                    )
                )
        return categories

    def load_people(self) -> list[Person]:
        file = "people.csv"
        rows = self.table(file)
        if rows is None:
            return []
        seen: dict[str, int] = {}
        people = []
        for row in rows:
            person_id = self.required(file, row, "id")
            name = self.required(file, row, "name")
            role = self.one_of(file, row, "role", ROLES, "role")
            target = self.required(file, row, "unit_or_area")
            if target is not None and self.area_levels is not None and self.unit_kinds is not None:
                self.check_person_target(file, row, role, target)
            phone = row["phone"] or None
            if phone is not None and not _PHONE.match(phone):
                self.add(file, row.line, "phone", f"'{phone}' does not look like a phone number")
            email = row["email"] or None
            if email is not None and not _EMAIL.match(email):
                self.add(file, row.line, "email", f"'{email}' does not look like an e-mail address")
            if person_id is None or not self.unique(file, row, "id", person_id, seen):
                continue
            if name is not None and role is not None and target is not None:
                people.append(Person(person_id, name, role, target, phone, email))
        return people

    def check_person_target(self, file: str, row: _Row, role: str | None, target: str) -> None:
        assert self.area_levels is not None and self.unit_kinds is not None
        # Should a unit share its code with an area (already reported in units.csv), read the
        # code the way the role expects rather than report the person as well.
        as_area = target in self.area_levels and (
            role == "grid_worker" or target not in self.unit_kinds
        )
        if target in self.unit_kinds and not as_area:
            kind = self.unit_kinds[target]
            if role == "grid_worker":
                self.add(
                    file,
                    row.line,
                    "unit_or_area",
                    f"'{target}' is a unit; a grid_worker belongs to a grid area",
                )
            elif role is not None and kind is not None and kind not in _ROLE_UNIT_KINDS[role]:
                self.add(
                    file,
                    row.line,
                    "unit_or_area",
                    f"'{target}' is a {kind}; a {role} belongs to a "
                    f"{' or '.join(_ROLE_UNIT_KINDS[role])}",
                )
        elif as_area:
            level = self.area_levels[target]
            if role == "grid_worker":
                if level is not None and level != "grid":
                    self.add(
                        file,
                        row.line,
                        "unit_or_area",
                        f"'{target}' is a {level}; a grid_worker belongs to a grid",
                    )
            elif role is not None:
                self.add(
                    file,
                    row.line,
                    "unit_or_area",
                    f"'{target}' is an area; a {role} belongs to a unit "
                    f"({' or '.join(_ROLE_UNIT_KINDS[role])})",
                )
        else:
            self.add(file, row.line, "unit_or_area", f"unknown unit or area '{target}'")

    def load_calendar(self) -> tuple[frozenset[date], frozenset[date]] | None:
        file = "calendar.csv"
        rows = self.table(file)
        if rows is None:
            return None
        seen: dict[str, int] = {}
        holidays: set[date] = set()
        workdays: set[date] = set()
        for row in rows:
            raw = self.required(file, row, "date")
            kind = self.one_of(file, row, "kind", CALENDAR_KINDS, "calendar kind")
            if raw is None:
                continue
            day = _parse_date(raw)
            if day is None:
                self.add(file, row.line, "date", f"'{raw}' is not a date; write YYYY-MM-DD")
                continue
            if not self.unique(file, row, "date", day.isoformat(), seen):
                continue
            if kind == "workday" and day.weekday() < 5:
                self.add(
                    file,
                    row.line,
                    "date",
                    f"{raw} is a weekday already; 'workday' is for a weekend day that is worked",
                )
            if kind == "holiday":
                holidays.add(day)
            elif kind == "workday":
                workdays.add(day)
        return frozenset(holidays), frozenset(workdays)

    def load_office_hours(self) -> tuple[tuple[time, time], ...] | None:
        file = "office_hours.csv"
        rows = self.table(file)
        if rows is None:
            return None
        periods: list[tuple[time, time, int]] = []
        for row in rows:
            start = self.clock(file, row, "start")
            end = self.clock(file, row, "end")
            if start is None or end is None:
                continue
            if start >= end:
                self.add(
                    file, row.line, "end", f"{_hhmm(end)} is not after the start {_hhmm(start)}"
                )
                continue
            periods.append((start, end, row.line))
        if not rows:
            self.add(file, 0, None, "no office hours: a working day needs at least one period")
        periods.sort()
        for (_, prev_end, prev_line), (start, end, line) in pairwise(periods):
            if start < prev_end:
                self.add(
                    file,
                    line,
                    "start",
                    f"{_hhmm(start)}–{_hhmm(end)} overlaps the period on line {prev_line}",
                )
        return tuple((s, e) for s, e, _ in periods)

    def clock(self, file: str, row: _Row, column: str) -> time | None:
        raw = self.required(file, row, column)
        if raw is None:
            return None
        m = _CLOCK.match(raw)
        if m:
            hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
            if hour < 24 and minute < 60 and second < 60:
                return time(hour, minute, second)
        self.add(file, row.line, column, f"'{raw}' is not a time of day; write HH:MM")
        return None

    def load_warning_levels(self) -> tuple[WarningLevel, ...] | None:
        file = "warning_levels.csv"
        rows = self.table(file)
        if rows is None:
            return None
        seen: dict[str, int] = {}
        found: dict[str, tuple[float | None, str | None, int]] = {}
        for row in rows:
            colour = self.one_of(file, row, "colour", COLOURS, "colour")
            action = self.one_of(file, row, "action", WARNING_ACTIONS, "warning action")
            fraction = None
            raw = self.required(file, row, "from_fraction")
            if raw is not None:
                with contextlib.suppress(ValueError):
                    fraction = float(raw)
                if fraction is None or not math.isfinite(fraction) or fraction < 0:
                    self.add(
                        file, row.line, "from_fraction", f"'{raw}' is not a number of 0 or more"
                    )
                    fraction = None
            if colour is not None and self.unique(file, row, "colour", colour, seen):
                found[colour] = (fraction, action, row.line)

        missing = [c for c in COLOURS if c not in found]
        if missing:
            self.add(
                file,
                0,
                "colour",
                f"missing colour(s): {', '.join(missing)}; "
                f"all of {', '.join(COLOURS)} are required",
            )
        green = found.get("green")
        if green is not None and green[0] is not None and green[0] != 0:
            self.add(
                file,
                green[2],
                "from_fraction",
                "green must start at 0, or a fresh case has no colour",
            )
        previous: tuple[str, float] | None = None
        for colour in COLOURS:
            if colour not in found or found[colour][0] is None:
                continue
            fraction, _, line = found[colour]
            assert fraction is not None
            if previous is not None and fraction <= previous[1]:
                self.add(
                    file,
                    line,
                    "from_fraction",
                    f"{colour} starts at {fraction}, not above {previous[0]} ({previous[1]}); "
                    f"the levels must rise in the order {', '.join(COLOURS)}",
                )
            previous = (colour, fraction)
        if missing or any(f is None or a is None for f, a, _ in found.values()):
            return None
        levels = []
        for colour in COLOURS:
            fraction, action, _ = found[colour]
            assert fraction is not None and action is not None
            levels.append(WarningLevel(colour=colour, from_fraction=fraction, action=action))
        return tuple(levels)


def adapter_problems(
    jurisdiction: Jurisdiction,
    problems_of: Callable[[AdapterConfig], Iterable[tuple[str | None, str]]],
) -> list[Problem]:
    """What ``problems_of`` (the adapter registry's check: installed here, needs an endpoint,
    options that fit its schema) finds in each adapters.csv row, placed on its line."""
    return [
        Problem("adapters.csv", jurisdiction.adapter_lines.get(config.code, 0), column, message)
        for config in jurisdiction.adapters
        for column, message in problems_of(config)
    ]


def _valid_zone(name: str) -> bool:
    # ZoneInfo also takes file-system-looking keys; an IANA name never starts with a separator.
    if name.startswith(("/", ".")) or "\\" in name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in _LIST_SEPARATOR.split(text) if item.strip()]


def _parse_date(text: str) -> date | None:
    # fromisoformat alone would also take 20260101 and week dates, which a clerk never means.
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M") if not t.second else t.strftime("%H:%M:%S")
