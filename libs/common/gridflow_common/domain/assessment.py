"""Assessment (考核) and hotspots (热点): the figures a leader reads per department, unit,
street, community or grid worker over a period, the composite score the city weighs them
with, and the rules that turn many reports of one kind in one place into an alert.

Standard library only. The SQL that sums a city's year lives in intake
(``gridflow_intake.assessment``); it hands this module one ``Tally`` per group, and
``figures`` turns a tally into the row the API, the CSV and the workbook show. ``tally_cases``
is the same aggregation over case rows in memory (the reference the SQL is tested against).

What counts (README, "Assessment"):

- **registered**: cases registered in the period; **dispatched**: cases first dispatched in it;
- **closed**: cases closed in it, of which **closed late** reached the overdue colour
  (orange or red) before they were closed, and **closed on time** did not;
- **returned**: returns (退回) made in the period;
- **rework rate**: closed cases that were sent back to their holder after a failed
  verification (核查未通过) or reopened, over closed cases;
- **extension rate**: closed cases whose holder asked for an extension (申请延期), over closed;
- **escalations**: escalations (升级) made in the period;
- **average handling hours**: over closed cases, from the first dispatch to the last report
  of resolution (or to closing when none was recorded);
- **average satisfaction**: over closed cases the resident evaluated (1..5).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gridflow_common.domain import vocabulary as v

# -- the groups a period is assessed by ----------------------------------------------------------

BY_DEPARTMENT = "department"
BY_UNIT = "unit"
BY_STREET = "street"
BY_COMMUNITY = "community"
BY_GRID_WORKER = "grid_worker"
GROUPINGS = (BY_DEPARTMENT, BY_UNIT, BY_STREET, BY_COMMUNITY, BY_GRID_WORKER)
# The area level each area grouping rolls a case's area up to (a grid worker answers for a grid).
AREA_GROUPINGS = {BY_STREET: "street", BY_COMMUNITY: "community", BY_GRID_WORKER: "grid"}

FORMATS = ("json", "csv", "xlsx")
# A year and a half of leap days' slack: "about three years" is 1,096 days at most.
MAX_PERIOD_DAYS = 3 * 366

# Colours that mean the limit has passed (DOMAIN.md: orange overdue, red seriously overdue).
LATE_COLOURS = (v.ORANGE, v.RED)
# Timeline entries that send a case back to its holder to do again (返工).
REWORK_ENTRY_KINDS = (v.ENTRY_VERIFICATION_FAILED, "reopened")
SATISFACTION_RANGE = (1, 5)


# -- the composite score ---------------------------------------------------------------------

W_ON_TIME = "on_time"
W_SATISFACTION = "satisfaction"
W_NO_REWORK = "no_rework"
W_NO_EXTENSION = "no_extension"
WEIGHT_KEYS = (W_ON_TIME, W_SATISFACTION, W_NO_REWORK, W_NO_EXTENSION)
DEFAULT_WEIGHTS: Mapping[str, float] = {
    W_ON_TIME: 40.0,
    W_SATISFACTION: 30.0,
    W_NO_REWORK: 20.0,
    W_NO_EXTENSION: 10.0,
}


@dataclass(frozen=True)
class Weights:
    """The city's weights of the score's parts (assessment.csv; ``DEFAULT_WEIGHTS`` for any it
    leaves out). Only their proportions matter."""

    on_time: float = DEFAULT_WEIGHTS[W_ON_TIME]
    satisfaction: float = DEFAULT_WEIGHTS[W_SATISFACTION]
    no_rework: float = DEFAULT_WEIGHTS[W_NO_REWORK]
    no_extension: float = DEFAULT_WEIGHTS[W_NO_EXTENSION]

    def as_dict(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in WEIGHT_KEYS}


def score(weights: Weights, parts: Mapping[str, float | None]) -> float | None:
    """100 × Σ wᵢ·pᵢ / Σ wᵢ over the parts that have a value (each in 0..1); None when none has.

    A part without data (no closed case, no evaluation) is left out and the others carry the
    weight: a unit nobody evaluated is scored on what is known of it, not given zero."""
    total = weighted = 0.0
    for key in WEIGHT_KEYS:
        value = parts.get(key)
        weight = getattr(weights, key)
        if value is None or weight <= 0:
            continue
        total += weight
        weighted += weight * value
    if total == 0:
        return None
    return round(100.0 * weighted / total, 1)


# -- the figures of one group ------------------------------------------------------------------


@dataclass
class Tally:
    """Sums over one group's cases; what SQL's GROUP BY hands over, and what groups that roll
    up into one (grids into their community) add together."""

    registered: int = 0
    dispatched: int = 0
    closed: int = 0
    closed_late: int = 0
    returned: int = 0
    reworked: int = 0
    extended: int = 0
    escalations: int = 0
    handling_seconds: float = 0.0
    handled: int = 0
    satisfaction_sum: int = 0
    evaluated: int = 0

    def add(self, other: Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def empty(self) -> bool:
        return not any(getattr(self, f.name) for f in fields(self))


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def figures(tally: Tally, weights: Weights) -> dict[str, Any]:
    """The row the API shows for a tally (without its key and name)."""
    closed = tally.closed
    on_time = closed - tally.closed_late
    rework_rate = _ratio(tally.reworked, closed)
    extension_rate = _ratio(tally.extended, closed)
    satisfaction = _ratio(tally.satisfaction_sum, tally.evaluated)
    low, high = SATISFACTION_RANGE
    parts = {
        W_ON_TIME: _ratio(on_time, closed),
        W_SATISFACTION: None if satisfaction is None else (satisfaction - low) / (high - low),
        W_NO_REWORK: None if rework_rate is None else 1.0 - min(rework_rate, 1.0),
        W_NO_EXTENSION: None if extension_rate is None else 1.0 - min(extension_rate, 1.0),
    }
    hours = _ratio(tally.handling_seconds, tally.handled)
    return {
        "registered": tally.registered,
        "dispatched": tally.dispatched,
        "closed": closed,
        "closed_on_time": on_time,
        "closed_late": tally.closed_late,
        "returned": tally.returned,
        "rework_rate": _round(rework_rate, 4),
        "extension_rate": _round(extension_rate, 4),
        "escalations": tally.escalations,
        "avg_handling_hours": _round(None if hours is None else hours / 3600.0, 2),
        "avg_satisfaction": _round(satisfaction, 2),
        "score": score(weights, parts),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class CaseOutcome:
    """One case as the in-memory aggregation reads it (instants aware, UTC or not)."""

    key: str | None
    registered_at: dt.datetime
    first_dispatched_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    late: bool = False
    reworked: bool = False
    extended: bool = False
    satisfaction: int | None = None
    # Instants of this case's returns and escalations, counted when they fall in the period.
    returns: tuple[dt.datetime, ...] = ()
    escalations: tuple[dt.datetime, ...] = ()


def tally_cases(
    cases: Iterable[CaseOutcome], start: dt.datetime, end: dt.datetime
) -> dict[str, Tally]:
    """The tallies of ``cases`` by key over [start, end): the reference the SQL sums match."""

    def within(instant: dt.datetime | None) -> bool:
        return instant is not None and start <= instant < end

    out: dict[str, Tally] = {}
    for case in cases:
        if case.key is None:
            continue
        t = out.setdefault(case.key, Tally())
        t.registered += within(case.registered_at)
        t.dispatched += within(case.first_dispatched_at)
        t.returned += sum(1 for r in case.returns if within(r))
        t.escalations += sum(1 for e in case.escalations if within(e))
        if not within(case.closed_at):
            continue
        assert case.closed_at is not None
        t.closed += 1
        t.closed_late += case.late
        t.reworked += case.reworked
        t.extended += case.extended
        if case.first_dispatched_at is not None:
            finished = case.resolved_at or case.closed_at
            t.handling_seconds += (finished - case.first_dispatched_at).total_seconds()
            t.handled += 1
        if case.satisfaction is not None:
            t.satisfaction_sum += case.satisfaction
            t.evaluated += 1
    return {k: t for k, t in out.items() if not t.empty}


def roll_up(tallies: Mapping[str | None, Tally], key_of: Callable[[str], str | None]) -> dict:
    """Tallies regrouped by ``key_of`` (a grid's community, a unit's department); a key that
    maps to None is left out."""
    out: dict[str, Tally] = {}
    for key, tally in tallies.items():
        target = key_of(key) if key is not None else None
        if target is None:
            continue
        out.setdefault(target, Tally()).add(tally)
    return out


# -- the period ------------------------------------------------------------------------------


class AssessmentRefused(ValueError):
    """A query that cannot be answered: ``field`` and why."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def parse_date(name: str, text: str) -> dt.date:
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise AssessmentRefused(name, f"{text!r} is not a date (YYYY-MM-DD)") from None


def period(first: dt.date, last: dt.date, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC for the local dates ``first`` .. ``last`` (both included)."""
    if first > last:
        raise AssessmentRefused("from", f"'from' ({first}) is after 'to' ({last})")
    days = (last - first).days + 1
    if days > MAX_PERIOD_DAYS:
        raise AssessmentRefused(
            "to", f"the period is {days} days; at most {MAX_PERIOD_DAYS} (about three years)"
        )
    start = dt.datetime.combine(first, dt.time(), zone)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


# -- downloads ------------------------------------------------------------------------------------

# The columns of a download: the JSON row's key and its Chinese header (README lists both).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "编码"),
    ("name", "名称"),
    ("registered", "立案数"),
    ("dispatched", "派遣数"),
    ("closed", "结案数"),
    ("closed_on_time", "按期结案数"),
    ("closed_late", "超期结案数"),
    ("returned", "退回数"),
    ("rework_rate", "返工率"),
    ("extension_rate", "延期率"),
    ("escalations", "升级数"),
    ("avg_handling_hours", "平均处置时长(小时)"),
    ("avg_satisfaction", "平均满意度"),
    ("score", "综合得分"),
)
# A spreadsheet takes a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A text cell a spreadsheet will show as text, never run: a leading formula character
    gets an apostrophe before it. Numbers are left as numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def table(rows: Iterable[Mapping[str, Any]]) -> list[list[Any]]:
    """Header row (Chinese) and one row per group, cells made safe."""
    out: list[list[Any]] = [[zh for _, zh in COLUMNS]]
    for row in rows:
        out.append([safe_cell(row.get(key)) for key, _ in COLUMNS])
    return out


def to_csv(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """UTF-8 with a byte-order mark: Excel then opens the Chinese as Chinese."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    for line in table(rows):
        writer.writerow("" if cell is None else cell for cell in line)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# -- hotspots (热点) ------------------------------------------------------------------------------

HOTSPOT_LEVELS = ("grid", "community")
ANY_CATEGORY = "*"


@dataclass(frozen=True)
class HotspotRule:
    """``threshold`` new cases of one category in one area of ``level`` within one window of
    ``window_minutes`` make an alert; a threshold of 0 turns the level off."""

    level: str
    threshold: int
    window_minutes: int
    category: str = ANY_CATEGORY


# When hotspots.csv does not say: 5 in a grid or 10 in a community within an hour.
DEFAULT_HOTSPOT_RULES: tuple[HotspotRule, ...] = (
    HotspotRule("grid", 5, 60),
    HotspotRule("community", 10, 60),
)


@dataclass(frozen=True)
class HotspotRules:
    rules: tuple[HotspotRule, ...] = ()
    _index: dict[tuple[str, str], HotspotRule] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        index = {(r.category, r.level): r for r in DEFAULT_HOTSPOT_RULES}
        index.update({(r.category, r.level): r for r in self.rules})
        object.__setattr__(self, "_index", index)

    def rule(self, category: str, level: str) -> HotspotRule | None:
        """The rule for ``category`` at ``level`` (its own row, else the ``*`` row, else the
        default); None when that level is off for it."""
        found = self._index.get((category, level)) or self._index.get((ANY_CATEGORY, level))
        if found is None or found.threshold <= 0:
            return None
        return found


def window_start(instant: dt.datetime, window_minutes: int) -> dt.datetime:
    """The start of the fixed window ``instant`` falls in: windows of ``window_minutes`` laid
    end to end from the Unix epoch (UTC), so every replica and every report agree on it."""
    seconds = int(instant.timestamp())
    size = window_minutes * 60
    return dt.datetime.fromtimestamp(seconds - seconds % size, dt.timezone.utc)


def hotspot_id(category: str, level: str, area_code: str, start: dt.datetime, minutes: int) -> str:
    """A short id naming one (category, area, window): the same for every report in it."""
    text = f"{category}|{level}|{area_code}|{start.isoformat()}|{minutes}"
    return "HS-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:20].upper()
