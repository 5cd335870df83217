"""Who hears what by which channel, and when (通知计划). Standard library only; time passed in.

- **Kinds** of message (``KINDS``): one Chinese template each (``gridflow_notify/templates``),
  for staff and, prefixed ``resident_``, for the reporter.
- **Channels per person** are the city's data: the optional jurisdiction file ``notify.csv``
  (``person``, ``channels`` in order of preference, ``kinds`` the row applies to, empty for
  every kind). A person with no row gets SMS when people.csv has a phone, else e-mail.
- **Quiet hours** (免打扰时段, settings.csv ``quiet_hours``, default ``22:00-07:00`` city time):
  a message that is not urgent, made in them, waits for their end. Urgent: red warnings,
  escalations, undeliverable cases, and every message about a category settings.csv lists in
  ``urgent_categories``.
- **Backoff**: the n-th failed try waits ``base * 2**(n-1)`` seconds, capped, on operational
  time (never the city's clock: a simulated clock that stands still would never bring it due).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# -- kinds -------------------------------------------------------------------------------------
REGISTERED = "registered"
DISPATCHED = "dispatched"
WARNING_YELLOW = "warning_yellow"
WARNING_ORANGE = "warning_orange"
WARNING_RED = "warning_red"
SUPERVISION = "supervision"
ESCALATION = "escalation"
RETURNED = "returned"
RESOLVED = "resolved"
EVALUATION = "evaluation"
AWAITING_ORDER = "awaiting_order"
ASSISTING = "assisting"
UNDELIVERABLE = "undeliverable"
HOTSPOT = "hotspot"
STAFF_KINDS = (
    REGISTERED,
    DISPATCHED,
    WARNING_YELLOW,
    WARNING_ORANGE,
    WARNING_RED,
    SUPERVISION,
    ESCALATION,
    RETURNED,
    AWAITING_ORDER,
    ASSISTING,
    UNDELIVERABLE,
    HOTSPOT,
)
RESIDENT_PREFIX = "resident_"
RESIDENT_KINDS = tuple(RESIDENT_PREFIX + k for k in (REGISTERED, DISPATCHED, RESOLVED, EVALUATION))
KINDS = STAFF_KINDS + RESIDENT_KINDS
URGENT_KINDS = frozenset({WARNING_RED, ESCALATION, UNDELIVERABLE})

# -- channels ----------------------------------------------------------------------------------
SMS = "sms"
EMAIL = "email"
WECHAT_OFFICIAL = "wechat_official"
_CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_LIST = re.compile(r"[;；,，]")

# -- quiet hours -------------------------------------------------------------------------------
DEFAULT_QUIET_HOURS = (dt.time(22, 0), dt.time(7, 0))
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–~～至]\s*(\d{1,2}):(\d{2})\s*$")

# -- backoff -----------------------------------------------------------------------------------
DEFAULT_BACKOFF_BASE = 10.0
DEFAULT_BACKOFF_CAP = 3600.0
DEFAULT_MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class ChannelRule:
    person: str
    channels: tuple[str, ...]
    kinds: frozenset[str] = frozenset()  # empty: every kind


@dataclass(frozen=True)
class NotifyPlan:
    """The city's notification data, as the jurisdiction carries it."""

    rules: tuple[ChannelRule, ...] = ()
    quiet_hours: tuple[dt.time, dt.time] | None = DEFAULT_QUIET_HOURS
    urgent_categories: frozenset[str] = frozenset()
    # kind -> template text the city wrote (notify_templates.csv); checked at import.
    templates: Mapping[str, str] = field(default_factory=dict)
    template_lines: Mapping[str, int] = field(default_factory=dict)

    def channels_for(
        self, person_id: str, kind: str, phone: str | None, email: str | None
    ) -> tuple[str, ...]:
        """The person's channels for ``kind``, in order: a row naming the kind wins over a row
        for every kind; no row: SMS to a phone, else e-mail, else none."""
        general: tuple[str, ...] | None = None
        for rule in self.rules:
            if rule.person != person_id:
                continue
            if kind in rule.kinds:
                return rule.channels
            if not rule.kinds and general is None:
                general = rule.channels
        if general is not None:
            return general
        return default_channels(phone, email)

    def is_urgent(self, kind: str, category: str | None) -> bool:
        return kind in URGENT_KINDS or (category is not None and category in self.urgent_categories)


def default_channels(phone: str | None, email: str | None) -> tuple[str, ...]:
    return (SMS,) if phone else ((EMAIL,) if email else (SMS,))


def resident_channels(
    report_channel: str | None, contact: Mapping[str, str | None]
) -> tuple[str, ...]:
    """Through the channel they reported by where it can answer (WeChat; Open311 and the web
    portal by e-mail), then SMS."""
    order: list[str] = []
    if report_channel == "wechat" and contact.get("wechat_openid"):
        order.append(WECHAT_OFFICIAL)
    if report_channel in ("open311", "web") and contact.get("email"):
        order.append(EMAIL)
    if contact.get("phone"):
        order.append(SMS)
    if contact.get("email") and EMAIL not in order:
        order.append(EMAIL)
    return tuple(order)


def warning_kind(colour: str, action: str) -> str | None:
    """The kind of message a colour's action sends (escalate: escalation; else by colour)."""
    if action == "escalate":
        return ESCALATION
    return {"yellow": WARNING_YELLOW, "orange": WARNING_ORANGE, "red": WARNING_RED}.get(colour)


# -- quiet hours -------------------------------------------------------------------------------


def parse_quiet_hours(text: str) -> tuple[dt.time, dt.time] | None:
    """``22:00-07:00`` (city time; may wrap midnight); ``none`` or ``无`` turns them off.
    ValueError saying why otherwise."""
    if text.strip().lower() in ("none", "off", "无", "不设"):
        return None
    m = _SPAN.match(text)
    if not m:
        raise ValueError(f"'{text}' is not a span like 22:00-07:00 (or 'none')")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"'{text}' names a time that does not exist")
    start, end = dt.time(h1, m1), dt.time(h2, m2)
    if start == end:
        raise ValueError(f"'{text}' starts and ends at the same time")
    return start, end


def quiet_until(
    local_now: dt.datetime, quiet: tuple[dt.time, dt.time] | None
) -> dt.datetime | None:
    """When quiet hours that ``local_now`` (aware, in the city's zone) lies in end; None when
    it lies outside them."""
    if quiet is None:
        return None
    start, end = quiet
    t = local_now.timetz().replace(tzinfo=None)
    day = local_now.date()
    if start < end:
        inside = start <= t < end
        end_day = day
    else:  # wraps midnight: 22:00-07:00
        inside = t >= start or t < end
        end_day = day + dt.timedelta(days=1) if t >= start else day
    if not inside:
        return None
    return dt.datetime.combine(end_day, end, tzinfo=local_now.tzinfo)


def hold_until(
    local_now: dt.datetime, quiet: tuple[dt.time, dt.time] | None, urgent: bool
) -> dt.datetime | None:
    """Until when a message made at ``local_now`` waits: the end of quiet hours for one that
    is not urgent, else None (it goes now)."""
    return None if urgent else quiet_until(local_now, quiet)


# -- backoff -----------------------------------------------------------------------------------


def backoff(
    failed_tries: int,
    base: float = DEFAULT_BACKOFF_BASE,
    cap: float = DEFAULT_BACKOFF_CAP,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait after ``failed_tries`` (from 1) failed tries: doubling from ``base``,
    at most ``cap``, never sooner than the gateway's ``retry_after``."""
    if failed_tries < 1:
        raise ValueError("backoff counts failed tries from 1")
    wait = min(cap, base * 2 ** min(failed_tries - 1, 60))
    return max(wait, retry_after) if retry_after is not None else wait


# -- notify.csv --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileProblem:
    file: str
    line: int
    column: str | None
    message: str


def parse_rules(
    text: str, people: Iterable[str], file: str = "notify.csv"
) -> tuple[tuple[ChannelRule, ...], list[FileProblem]]:
    """``notify.csv``: ``person`` (an id of people.csv), ``channels`` (names in order, ``;``
    between), ``kinds`` (optional: the kinds the row is for, ``;`` between; empty: all)."""
    known = set(people)
    problems: list[FileProblem] = []
    rules: list[ChannelRule] = []
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = [h.strip() for h in next(reader, [])]
    for needed in ("person", "channels"):
        if needed not in header:
            problems.append(FileProblem(file, 1, needed, "column is missing"))
    if problems:
        return (), problems
    seen: dict[tuple[str, str], int] = {}
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        row = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        person = row.get("person", "")
        if not person:
            problems.append(FileProblem(file, line, "person", "is empty"))
            continue
        if person not in known:
            problems.append(FileProblem(file, line, "person", f"unknown person '{person}'"))
            continue
        channels = tuple(c.strip() for c in _LIST.split(row.get("channels", "")) if c.strip())
        if not channels:
            problems.append(FileProblem(file, line, "channels", "names no channel"))
            continue
        bad = [c for c in channels if not _CHANNEL_NAME.match(c)]
        if bad:
            problems.append(
                FileProblem(file, line, "channels", f"'{bad[0]}' is not a channel name")
            )
            continue
        if len(set(channels)) != len(channels):
            problems.append(FileProblem(file, line, "channels", "names a channel twice"))
            continue
        kinds = frozenset(k.strip() for k in _LIST.split(row.get("kinds", "")) if k.strip())
        unknown = sorted(kinds - set(KINDS))
        if unknown:
            problems.append(
                FileProblem(
                    file, line, "kinds", f"unknown kind '{unknown[0]}' (known: {', '.join(KINDS)})"
                )
            )
            continue
        for kind in kinds or {"*"}:
            if (person, kind) in seen:
                problems.append(
                    FileProblem(
                        file,
                        line,
                        "kinds",
                        f"person '{person}' has a row for "
                        f"{'every kind' if kind == '*' else kind} already "
                        f"(line {seen[(person, kind)]})",
                    )
                )
                break
            seen[(person, kind)] = line
        else:
            rules.append(ChannelRule(person, channels, kinds))
    return tuple(rules), problems


def parse_templates(
    text: str, file: str = "notify_templates.csv"
) -> tuple[dict[str, str], dict[str, int], list[FileProblem]]:
    """``notify_templates.csv``: ``kind`` and ``template`` (Jinja2 text, in Chinese) for each
    kind the city words its own way. Whether a template renders is checked at import by
    ``gridflow_notify.messages`` (this module knows no Jinja2)."""
    problems: list[FileProblem] = []
    templates: dict[str, str] = {}
    lines: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = [h.strip() for h in next(reader, [])]
    for needed in ("kind", "template"):
        if needed not in header:
            problems.append(FileProblem(file, 1, needed, "column is missing"))
    if problems:
        return {}, {}, problems
    for line, cells in enumerate(reader, start=2):
        row = {h: (cells[i] if i < len(cells) else "") for i, h in enumerate(header)}
        kind = row.get("kind", "").strip()
        if not kind and not row.get("template", "").strip():
            continue
        if kind not in KINDS:
            problems.append(
                FileProblem(
                    file, line, "kind", f"unknown kind '{kind}' (known: {', '.join(KINDS)})"
                )
            )
            continue
        if kind in templates:
            problems.append(
                FileProblem(file, line, "kind", f"given twice (first on line {lines[kind]})")
            )
            continue
        if not row.get("template", "").strip():
            problems.append(FileProblem(file, line, "template", "is empty"))
            continue
        templates[kind] = row["template"]
        lines[kind] = line
    return templates, lines, problems


def load(
    texts: Mapping[str, str],
    settings: Mapping[str, tuple[str, int]],
    people: Iterable,
    categories: Iterable,
    add,
) -> NotifyPlan:
    """The jurisdiction loader's hook: ``texts`` the folder's files by name, ``settings`` the
    notify keys of settings.csv (value, line), ``add(file, line, column, message)`` its problem
    list. Returns the plan (the defaults for whatever is absent)."""
    quiet: tuple[dt.time, dt.time] | None = DEFAULT_QUIET_HOURS
    if "quiet_hours" in settings:
        value, line = settings["quiet_hours"]
        try:
            quiet = parse_quiet_hours(value)
        except ValueError as exc:
            add("settings.csv", line, "value", str(exc))
    urgent: frozenset[str] = frozenset()
    if "urgent_categories" in settings:
        value, line = settings["urgent_categories"]
        codes = {c.code for c in categories}
        listed = [c.strip() for c in _LIST.split(value) if c.strip()]
        for code in listed:
            if codes and code not in codes:
                add(
                    "settings.csv", line, "value", f"unknown category '{code}' in urgent_categories"
                )
        urgent = frozenset(listed)
    rules: tuple[ChannelRule, ...] = ()
    if "notify.csv" in texts:
        rules, problems = parse_rules(texts["notify.csv"], (p.id for p in people))
        for p in problems:
            add(p.file, p.line, p.column, p.message)
    templates: dict[str, str] = {}
    lines: dict[str, int] = {}
    if "notify_templates.csv" in texts:
        templates, lines, problems = parse_templates(texts["notify_templates.csv"])
        for p in problems:
            add(p.file, p.line, p.column, p.message)
    return NotifyPlan(rules, quiet, urgent, templates, lines)
