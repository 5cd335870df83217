"""A jurisdiction (辖区): the territory, departments, units, categories, people, calendar and
warning levels a city hands Gridflow before its first case, and the lookups routing, SLA and
notify make in it. Reading and validating the city's CSV folder is ``jurisdiction_files``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from gridflow_common.domain.addresses import AddressEntry, AddressIndex, AddressMatch
from gridflow_common.domain.assessment import HotspotRules, Weights
from gridflow_common.domain.calendar import (
    TimeLimit,
    TimeUnit,
    WarningLevel,
    WorkingCalendar,
)
from gridflow_common.domain.geo import Polygon
from gridflow_common.domain.notify_plan import NotifyPlan
from gridflow_common.domain.rules import EMPTY as NO_RULES
from gridflow_common.domain.rules import RuleSet
from gridflow_common.domain.vocabulary import UNIT_KINDS

LEVELS = ("district", "street", "community", "grid")
DEFAULT_TIME_ZONE = "Asia/Shanghai"
# How long the command center has to triage (研判) a case nobody could classify, when the
# jurisdiction's settings.csv does not say.
DEFAULT_TRIAGE_LIMIT = TimeLimit(2, TimeUnit.WORKING_HOURS)
CATEGORY_KINDS = ("component", "event")
CALENDAR_KINDS = ("holiday", "workday")
# What serves a department or unit the city's adapters.csv names no adapter for (the registry's
# DEFAULT_ADAPTER is this one).
DEFAULT_ADAPTER = "amqp"
# Unit and department codes are words of AMQP routing keys ("<department>.<unit>"), where a dot
# separates words, '*' and '#' are wildcards, and whitespace breaks the bindings clerks type.
CODE_FORBIDDEN = re.compile(r"[.*#\s]")

_PARENT_LEVEL = {"street": "district", "community": "street", "grid": "community"}
_UNIT_LEVEL = {
    "command_center": "district",
    "bureau": "district",
    "street_center": "street",
    "station": "street",
    "community_office": "community",
}
_UNIT_KINDS_WITH_DEPARTMENT = ("bureau", "station")
# The README gives grid workers a grid area and everyone else a unit; pinning the duty roles to
# their unit kind means a lookup such as "station duty of this station" cannot silently miss.
_ROLE_UNIT_KINDS: dict[str, tuple[str, ...]] = {
    "community_staff": ("community_office",),
    "street_duty": ("street_center",),
    "station_duty": ("station",),
    "bureau_duty": ("bureau",),
    "command_duty": ("command_center",),
    "leader": UNIT_KINDS,
}


# --------------------------------------------------------------------------- entities


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    level: str
    parent_code: str | None
    polygon: Polygon


@dataclass(frozen=True)
class Department:
    code: str
    name_zh: str
    name_en: str
    # Whether the department sees a case's reporters whole while it holds the case (the city
    # decides: departments.csv, optional column sees_reporter); masked otherwise.
    sees_reporter: bool = False


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    kind: str
    department_code: str | None
    area_code: str


@dataclass(frozen=True)
class AdapterConfig:
    """One row of the city's optional ``adapters.csv``: which department adapter serves ``code``
    (a department, so all of its units, or one unit; a unit's own row wins) and how. Kept here,
    standard library only, so the jurisdiction carries it; ``gridflow_common.adapters`` gives
    it to the adapter."""

    code: str
    adapter: str
    endpoint: str | None = None
    # Where the secret is kept: ``env:NAME`` (an environment variable) or ``file:/path``;
    # never the secret itself.
    credential_ref: str | None = None
    # The department's own words -> Gridflow's update statuses (vocabulary.UPDATE_STATUSES).
    status_map: Mapping[str, str] = field(default_factory=dict)
    # Adapter-specific settings (JSON object in the CSV), checked by the adapter's config schema.
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Category:
    code: str
    name_zh: str
    name_en: str
    kind: str
    limit: TimeLimit
    default_tier: str
    lead_department: str | None
    assisting_departments: tuple[str, ...]
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    role: str
    unit_or_area: str
    phone: str | None
    email: str | None


# --------------------------------------------------------------------------- jurisdiction


@dataclass(frozen=True)
class Jurisdiction:
    areas: tuple[Area, ...]
    departments: tuple[Department, ...]
    units: tuple[Unit, ...]
    categories: tuple[Category, ...]
    people: tuple[Person, ...]
    calendar: WorkingCalendar
    warning_levels: tuple[WarningLevel, ...]
    # The IANA zone the city works in: every instant leaves Gridflow in it.
    time_zone: str = DEFAULT_TIME_ZONE
    # The time limit of a case awaiting the command center's triage (no category yet).
    triage_limit: TimeLimit = DEFAULT_TRIAGE_LIMIT
    # adapters.csv: which adapter serves a department or unit (absent: the default, AMQP).
    adapters: tuple[AdapterConfig, ...] = ()
    # The spreadsheet line of each adapters.csv row, by code: checks made after reading (is the
    # adapter installed here?) name the cell a clerk must fix.
    adapter_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    # assessment.csv: the weights of the assessment's composite score (absent: the defaults).
    assessment_weights: Weights = field(default_factory=Weights)
    # hotspots.csv: how many reports of a kind in a grid or community, within how long, make
    # an alert (absent: the defaults).
    hotspot_rules: HotspotRules = field(default_factory=HotspotRules)
    # notify.csv, notify_templates.csv and settings quiet_hours / urgent_categories.
    notify_plan: NotifyPlan = field(default_factory=NotifyPlan)
    # rules.yaml: the city's routing rules beyond the taxonomy (absent: none; domain.rules).
    rules: RuleSet = NO_RULES
    # synonyms.csv: the city's words for classification, (word, standard) (absent: none).
    synonyms: tuple[tuple[str, str], ...] = ()
    # settings.csv merge_by_grid: whether a report located only by a grid (its code or name,
    # no point) joins an open point-less case of its category in that grid (docs/addresses.md).
    merge_by_grid: bool = False
    # addresses.csv: buildings, compounds and road sections -> grid and point (absent: none).
    addresses: tuple[AddressEntry, ...] = ()

    # Indexes are derived, so they stay out of equality, repr and the constructor.
    _areas: dict[str, Area] = field(init=False, repr=False, compare=False)
    _children: dict[str, tuple[Area, ...]] = field(init=False, repr=False, compare=False)
    _districts: tuple[Area, ...] = field(init=False, repr=False, compare=False)
    _departments: dict[str, Department] = field(init=False, repr=False, compare=False)
    _units: dict[str, Unit] = field(init=False, repr=False, compare=False)
    _unit_slots: dict[tuple[str, str | None, str], Unit] = field(
        init=False, repr=False, compare=False
    )
    _categories: dict[str, Category] = field(init=False, repr=False, compare=False)
    _people: dict[str, Person] = field(init=False, repr=False, compare=False)
    _people_at: dict[str, tuple[Person, ...]] = field(init=False, repr=False, compare=False)
    _adapters: dict[str, AdapterConfig] = field(init=False, repr=False, compare=False)
    _address_index: AddressIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        children: dict[str, list[Area]] = {}
        for a in self.areas:
            if a.parent_code is not None:
                children.setdefault(a.parent_code, []).append(a)
        slots: dict[tuple[str, str | None, str], Unit] = {}
        for u in self.units:
            slots.setdefault(_slot(u.kind, u.department_code, u.area_code), u)
        people_at: dict[str, list[Person]] = {}
        for p in self.people:
            people_at.setdefault(p.unit_or_area, []).append(p)
        set_ = object.__setattr__
        set_(self, "_areas", {a.code: a for a in self.areas})
        set_(self, "_children", {k: tuple(v) for k, v in children.items()})
        set_(self, "_districts", tuple(a for a in self.areas if a.level == "district"))
        set_(self, "_departments", {d.code: d for d in self.departments})
        set_(self, "_units", {u.code: u for u in self.units})
        set_(self, "_unit_slots", slots)
        set_(self, "_categories", {c.code: c for c in self.categories})
        set_(self, "_people", {p.id: p for p in self.people})
        set_(self, "_people_at", {k: tuple(v) for k, v in people_at.items()})
        set_(self, "_adapters", {a.code: a for a in self.adapters})
        # Built once per jurisdiction (so once per version): a lookup never scans the list.
        set_(self, "_address_index", AddressIndex(self.addresses, self.areas))

    @property
    def zone(self) -> tzinfo:
        """The city's zone, for showing instants to people and department systems."""
        return ZoneInfo(self.time_zone)

    def local(self, instant: datetime) -> datetime:
        """``instant`` as the city's clocks show it."""
        return instant.astimezone(self.zone)

    @property
    def district_codes(self) -> tuple[str, ...]:
        return tuple(a.code for a in self._districts)

    @property
    def name(self) -> str:
        return "、".join(a.name for a in self._districts)

    def area(self, code: str) -> Area | None:
        return self._areas.get(code)

    def areas_at(self, level: str) -> tuple[Area, ...]:
        return tuple(a for a in self.areas if a.level == level)

    def children(self, code: str) -> tuple[Area, ...]:
        return self._children.get(code, ())

    def unit(self, code: str) -> Unit | None:
        return self._units.get(code)

    def category(self, code: str) -> Category | None:
        return self._categories.get(code)

    def department(self, code: str) -> Department | None:
        return self._departments.get(code)

    def holder_name(self, code: str | None) -> str | None:
        """The name people read for a code that holds, leads or assists a case: a unit's
        name (南汇执法中队), else a department's Chinese name; None when neither knows it."""
        if not code:
            return None
        unit = self._units.get(code)
        if unit is not None:
            return unit.name
        department = self._departments.get(code)
        return department.name_zh if department is not None else None

    def person(self, person_id: str) -> Person | None:
        return self._people.get(person_id)

    def locate_point(self, lat: float, lon: float) -> Area | None:
        """The deepest area containing the point: its grid when the grids cover it."""
        # Descending the tree tests a few dozen polygons instead of every grid in the city.
        found: Area | None = None
        candidates = self._districts
        while candidates:
            hit = next((a for a in candidates if a.polygon.contains(lon, lat)), None)
            if hit is None:
                break
            found = hit
            candidates = self._children.get(hit.code, ())
        return found

    def resolve_address(self, address: str) -> AddressMatch | None:
        """The most specific place ``address`` names (domain.addresses): a building, compound
        or road section of addresses.csv, else the deepest area named; None when nothing."""
        return self._address_index.resolve(address)

    def grid_point(self, area_code: str) -> tuple[float, float] | None:
        """A point (lat, lon) inside the area: its centroid for a convex one."""
        return self._address_index.point_of(area_code)

    def ancestor(self, area_code: str, level: str) -> Area | None:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
        wanted = LEVELS.index(level)
        area = self._areas.get(area_code)
        while area is not None and LEVELS.index(area.level) > wanted:
            area = self._areas.get(area.parent_code) if area.parent_code else None
        return area if area is not None and area.level == level else None

    def station(self, department_code: str, street_code: str) -> Unit | None:
        return self._unit_slots.get(_slot("station", department_code, street_code))

    def bureau(self, department_code: str, district_code: str) -> Unit | None:
        return self._unit_slots.get(_slot("bureau", department_code, district_code))

    def command_center(self, district_code: str) -> Unit | None:
        return self._unit_slots.get(_slot("command_center", None, district_code))

    def street_center(self, street_code: str) -> Unit | None:
        return self._unit_slots.get(_slot("street_center", None, street_code))

    def community_office(self, community_code: str) -> Unit | None:
        return self._unit_slots.get(_slot("community_office", None, community_code))

    def adapter_for(self, unit_code: str) -> AdapterConfig:
        """How ``unit_code`` is reached: its own adapters.csv row, else its department's, else
        the default (AMQP, the unit's own queue)."""
        own = self._adapters.get(unit_code)
        if own is not None:
            return own
        unit = self._units.get(unit_code)
        if unit is not None and unit.department_code is not None:
            shared = self._adapters.get(unit.department_code)
            if shared is not None:
                return shared
        return AdapterConfig(code=unit_code, adapter=DEFAULT_ADAPTER)

    def people_for(self, unit_or_area_code: str, roles: Iterable[str]) -> list[Person]:
        # A bare string is an iterable of characters; treat it as the one role it names.
        wanted = {roles} if isinstance(roles, str) else set(roles)
        return [p for p in self._people_at.get(unit_or_area_code, ()) if p.role in wanted]


def _slot(kind: str, department_code: str | None, area_code: str) -> tuple[str, str | None, str]:
    # Only bureaus and stations are told apart by department; the other kinds are one per area.
    return (kind, department_code if kind in _UNIT_KINDS_WITH_DEPARTMENT else None, area_code)
