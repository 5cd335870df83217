"""Finding cases: the command center's list (``GET /api/v1/cases``) and the board's summary
(``GET /api/v1/board/summary``), as queries on ``intake_cases``.

Every query is cut to the caller's scope (``scope.case_scope_clause``), so no list, total or
count ever holds a case ``access.may_read_case`` would refuse. Filters and sort keys are checked
against the city's data before any SQL runs: an unknown one is refused naming it.

Paging is by keyset (the sort key and the case id of the last row shown), carried in an opaque
cursor signed with the platform's secret and bound to the filters it was made for: a page never
repeats or skips a row because cases were registered meanwhile, and a cursor that was tampered
with, or is used with other filters, is refused.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from gridflow_common.domain import access as a
from gridflow_common.domain import lifecycle, privacy
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.jurisdiction import Jurisdiction
from gridflow_intake.handlers import Rejected
from gridflow_intake.models import cases, reports
from gridflow_intake.scope import case_scope_clause

MULTI_FILTERS = (
    "status",
    "colour",
    "tier",
    "department",
    "unit",
    "street",
    "community",
    "grid",
    "category",
    "channel",
)
SINGLE_FILTERS = ("registered_from", "registered_to", "late", "q")
FILTERS = MULTI_FILTERS + SINGLE_FILTERS
PAGING = ("sort", "limit", "cursor")
SORTS = ("lateness", "registered", "-registered")
DEFAULT_SORT = "-registered"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_VALUES = 50
MAX_Q = 100
MAX_CURSOR = 600
# ``status=open``: every status a case is still being worked on in.
OPEN = "open"
NO_COLOUR = "none"
WARNING_COLOURS = (v.YELLOW, v.ORANGE, v.RED)
SUMMARY_LATE_LIMIT = 100


@dataclass(frozen=True)
class CaseQuery:
    """A checked query: each multi-valued filter's values, the single ones, sort and paging."""

    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    registered_from: dt.datetime | None = None
    registered_to: dt.datetime | None = None
    late: bool | None = None
    q: str | None = None
    sort: str = DEFAULT_SORT
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    def fingerprint(self) -> str:
        """The filters and sort, for binding a cursor to them."""
        shown = {
            "v": {k: sorted(vals) for k, vals in sorted(self.values.items())},
            "f": self.registered_from.isoformat() if self.registered_from else None,
            "t": self.registered_to.isoformat() if self.registered_to else None,
            "l": self.late,
            "q": self.q,
            "s": self.sort,
        }
        text = json.dumps(shown, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# -- reading the query string ------------------------------------------------------------------


def _known(name: str, value: str, j: Jurisdiction) -> bool:
    if name == "status":
        return value == OPEN or value in v.CASE_STATUSES
    if name == "colour":
        return value == NO_COLOUR or value in v.COLOURS
    if name == "tier":
        return value in v.TIERS
    if name == "department":
        return j.department(value) is not None
    if name == "unit":
        return j.unit(value) is not None
    if name in ("street", "community", "grid"):
        area = j.area(value)
        return area is not None and area.level == name
    if name == "category":
        return j.category(value) is not None
    if name == "channel":
        return value in v.CHANNELS
    return False


_WHAT = {
    "status": f"a status ({', '.join((OPEN, *v.CASE_STATUSES))})",
    "colour": f"a colour ({', '.join((*v.COLOURS, NO_COLOUR))})",
    "tier": f"a tier ({', '.join(v.TIERS)})",
    "department": "a department code of the jurisdiction",
    "unit": "a unit code of the jurisdiction",
    "street": "a street area code",
    "community": "a community area code",
    "grid": "a grid area code",
    "category": "a category code of the jurisdiction",
    "channel": f"a channel ({', '.join(v.CHANNELS)})",
}


def _instant(name: str, text: str, j: Jurisdiction, *, end: bool) -> dt.datetime:
    """A date (the city's day: its start, or for ``end`` the start of the next) or an ISO
    instant with its offset."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            start = dt.datetime.combine(day, dt.time(), tzinfo=j.zone)
            return start + dt.timedelta(days=1) if end else start
        instant = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise Rejected(
            400,
            {name: [f"{text[:40]!r} is not a date (YYYY-MM-DD) or an instant with its offset"]},
        ) from None
    if instant.tzinfo is None:
        raise Rejected(400, {name: [f"{text[:40]!r} has no offset; give one (+08:00) or a date"]})
    return instant


def parse_query(args: Mapping[str, Sequence[str]], j: Jurisdiction, *, paging: bool) -> CaseQuery:
    """``args``: each parameter's values as given (repeated and/or comma-separated for the
    multi-valued filters). Refuses (400) an unknown parameter, an unknown value and a bad
    sort, limit or cursor, each named."""
    allowed = FILTERS + (PAGING if paging else ())
    problems: dict[str, list[str]] = {}
    unknown = sorted(k for k in args if k not in allowed)
    for name in unknown:
        problems[name[:100]] = [f"unknown parameter; the known ones are: {', '.join(allowed)}"]
    values: dict[str, tuple[str, ...]] = {}
    single: dict[str, str] = {}
    for name, given in args.items():
        if name in unknown:
            continue
        if any("\x00" in g for g in given):
            problems[name] = ["the value holds NUL"]
            continue
        if name in MULTI_FILTERS:
            parts = [p.strip() for g in given for p in g.split(",")]
            parts = [p for p in parts if p]
            if not parts:
                problems[name] = ["give at least one value"]
                continue
            if len(parts) > MAX_VALUES:
                problems[name] = [f"at most {MAX_VALUES} values"]
                continue
            bad = [p for p in parts if len(p) > 100 or not _known(name, p, j)]
            if bad:
                shown = ", ".join(repr(b[:100]) for b in bad[:5])
                problems[name] = [f"unknown value {shown}; give {_WHAT[name]}"]
                continue
            values[name] = tuple(dict.fromkeys(parts))
        else:
            if len(given) > 1:
                problems[name] = ["give this parameter once"]
                continue
            single[name] = given[0]
    query: dict[str, Any] = {}
    for name in ("registered_from", "registered_to"):
        if name in single:
            try:
                query[name] = _instant(name, single[name], j, end=name == "registered_to")
            except Rejected as exc:
                problems.update(exc.errors)
    if "late" in single:
        if single["late"] not in ("true", "false"):
            problems["late"] = [f"{single['late'][:20]!r}: give true or false"]
        else:
            query["late"] = single["late"] == "true"
    if "q" in single:
        q = single["q"].strip()
        if not q or len(q) > MAX_Q:
            problems["q"] = [f"give 1 to {MAX_Q} characters"]
        else:
            query["q"] = q
    if "sort" in single:
        if single["sort"] not in SORTS:
            problems["sort"] = [
                f"unknown sort key {single['sort'][:40]!r}; one of {', '.join(SORTS)}"
            ]
        else:
            query["sort"] = single["sort"]
    if "limit" in single:
        text = single["limit"]
        if not (text.isdigit() and len(text) <= 4 and 1 <= int(text) <= MAX_LIMIT):
            problems["limit"] = [f"{text[:20]!r}: give a whole number from 1 to {MAX_LIMIT}"]
        else:
            query["limit"] = int(text)
    if "cursor" in single:
        if not single["cursor"] or len(single["cursor"]) > MAX_CURSOR:
            problems["cursor"] = ["not a cursor this list gave"]
        else:
            query["cursor"] = single["cursor"]
    if problems:
        raise Rejected(400, problems)
    return CaseQuery(values=values, **query)


# -- the conditions -----------------------------------------------------------------------------


def conditions(query: CaseQuery, principal: a.Principal, j: Jurisdiction, now: dt.datetime) -> list:
    """The WHERE conditions of ``query`` for ``principal``, scope first."""
    where: list = [case_scope_clause(principal, j)]
    vals = query.values
    if "status" in vals:
        statuses = set(vals["status"]) - {OPEN}
        if OPEN in vals["status"]:
            statuses |= set(lifecycle.OPEN_STATUSES)
        where.append(cases.c.status.in_(sorted(statuses)))
    if "colour" in vals:
        colours = [c for c in vals["colour"] if c != NO_COLOUR]
        either = [cases.c.colour.in_(colours)] if colours else []
        if NO_COLOUR in vals["colour"]:
            either.append(cases.c.colour.is_(None))
        where.append(sa.or_(*either))
    if "tier" in vals:
        where.append(cases.c.tier.in_(vals["tier"]))
    if "department" in vals:
        holders: set[str] = set()
        for code in vals["department"]:
            holders |= a.holders_counting_for(j, code)
        where.append(
            sa.or_(cases.c.lead.in_(vals["department"]), cases.c.holder.in_(sorted(holders)))
        )
    if "unit" in vals:
        where.append(cases.c.holder.in_(vals["unit"]))
    if "street" in vals:
        where.append(cases.c.street_code.in_(vals["street"]))
    if "community" in vals:
        where.append(cases.c.community_code.in_(vals["community"]))
    if "grid" in vals:
        where.append(cases.c.area_code.in_(vals["grid"]))
    if "category" in vals:
        where.append(cases.c.category.in_(vals["category"]))
    if "channel" in vals:
        where.append(cases.c.channel.in_(vals["channel"]))
    if query.registered_from is not None:
        where.append(cases.c.registered_at >= query.registered_from)
    if query.registered_to is not None:
        where.append(cases.c.registered_at < query.registered_to)
    if query.late is True:
        where.append(sa.and_(cases.c.due_at.is_not(None), cases.c.due_at < now))
    elif query.late is False:
        where.append(sa.or_(cases.c.due_at.is_(None), cases.c.due_at >= now))
    if query.q:
        # ILIKE on PostgreSQL, lower() LIKE on SQLite; the text's own % and _ match themselves.
        where.append(
            sa.or_(
                cases.c.description.icontains(query.q, autoescape=True),
                cases.c.address.icontains(query.q, autoescape=True),
            )
        )
    return where


# -- the cursor ---------------------------------------------------------------------------------


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, b"cases-cursor:" + payload.encode("ascii"), hashlib.sha256).digest())


def make_cursor(key: bytes, query: CaseQuery, sort_value: str | None, case_id: str) -> str:
    body = json.dumps(
        {"f": query.fingerprint(), "k": sort_value, "id": case_id}, separators=(",", ":")
    )
    payload = _b64(body.encode("utf-8"))
    return f"{payload}.{_mac(key, payload)}"


_BAD_CURSOR = Rejected(
    400, {"cursor": ["not a cursor this list gave (altered, or made for other filters or sort)"]}
)


def read_cursor(key: bytes, query: CaseQuery) -> tuple[str | None, str]:
    """(sort value, case id) after which the page starts."""
    assert query.cursor is not None
    payload, dot, mac = query.cursor.partition(".")
    if not dot or not set(payload + mac) <= _B64URL:
        raise _BAD_CURSOR
    if not hmac.compare_digest(mac.encode("ascii", "replace"), _mac(key, payload).encode()):
        raise _BAD_CURSOR
    try:
        data = json.loads(_unb64(payload).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _BAD_CURSOR from None
    if not isinstance(data, dict) or data.get("f") != query.fingerprint():
        raise _BAD_CURSOR
    sort_value, case_id = data.get("k"), data.get("id")
    if not isinstance(case_id, str) or not (sort_value is None or isinstance(sort_value, str)):
        raise _BAD_CURSOR
    return sort_value, case_id


def _after(query: CaseQuery, sort_value: str | None, case_id: str) -> Any:
    """The rows after (sort value, case id) in the query's order."""
    try:
        return _after_key(query, sort_value, case_id)
    except ValueError:
        raise _BAD_CURSOR from None


def _after_key(query: CaseQuery, sort_value: str | None, case_id: str) -> Any:
    if query.sort == "lateness":
        if sort_value is None:
            return sa.and_(cases.c.due_at.is_(None), cases.c.case_id > case_id)
        due = dt.datetime.fromisoformat(sort_value)
        return sa.or_(
            cases.c.due_at.is_(None),
            cases.c.due_at > due,
            sa.and_(cases.c.due_at == due, cases.c.case_id > case_id),
        )
    if sort_value is None:
        raise _BAD_CURSOR
    at = dt.datetime.fromisoformat(sort_value)
    if query.sort == "registered":
        return sa.or_(
            cases.c.registered_at > at,
            sa.and_(cases.c.registered_at == at, cases.c.case_id > case_id),
        )
    return sa.or_(
        cases.c.registered_at < at,
        sa.and_(cases.c.registered_at == at, cases.c.case_id < case_id),
    )


def _order(sort: str) -> list:
    if sort == "lateness":
        return [cases.c.due_at.asc().nulls_last(), cases.c.case_id.asc()]
    if sort == "registered":
        return [cases.c.registered_at.asc(), cases.c.case_id.asc()]
    return [cases.c.registered_at.desc(), cases.c.case_id.desc()]


def _sort_value(sort: str, row: Any) -> str | None:
    instant = row.due_at if sort == "lateness" else row.registered_at
    return _utc(instant).isoformat() if instant is not None else None


def _utc(instant: dt.datetime) -> dt.datetime:
    return instant if instant.tzinfo else instant.replace(tzinfo=dt.timezone.utc)


# -- answers -------------------------------------------------------------------------------------

_ITEM_COLUMNS = (
    cases.c.case_id,
    cases.c.status,
    cases.c.category,
    cases.c.tier,
    cases.c.holder,
    cases.c.lead,
    cases.c.assisting,
    cases.c.colour,
    cases.c.due_at,
    cases.c.registered_at,
    cases.c.area_code,
    cases.c.street_code,
    cases.c.community_code,
    cases.c.description,
    cases.c.address,
    cases.c.escalations,
    cases.c.channel,
)


def _reporter_names(conn: sa.Connection, case_ids: list[str]) -> dict[str, list[str | None]]:
    names: dict[str, list[str | None]] = {}
    if case_ids:
        rows = conn.execute(
            sa.select(reports.c.case_id, reports.c.reporter).where(reports.c.case_id.in_(case_ids))
        )
        for case_id, reporter in rows:
            names.setdefault(case_id, []).append((reporter or {}).get("name"))
    return names


def _area_name(j: Jurisdiction, code: str | None) -> str | None:
    area = j.area(code) if code else None
    return area.name if area else None


def items(
    conn: sa.Connection, rows: Sequence[Any], principal: a.Principal, j: Jurisdiction
) -> list[dict]:
    """The rows as the list shows them; descriptions and addresses masked as the case view
    masks them, unless the caller may see the case's reporters."""
    names = _reporter_names(conn, [r.case_id for r in rows])
    shown = []
    for r in rows:
        facts = a.CaseFacts(r.area_code, r.holder, r.lead, tuple(r.assisting or ()))
        reveal = a.sees_reporter(principal, facts, j)

        def text(value: str | None, case_id: str = r.case_id, reveal: bool = reveal) -> Any:
            if value is None or reveal:
                return value
            return privacy.mask_free_text(value, names.get(case_id, []))

        category = j.category(r.category) if r.category else None
        grid = j.area(r.area_code)
        shown.append(
            {
                "case_id": r.case_id,
                "status": r.status,
                "category": r.category,
                "category_name": category.name_zh if category else None,
                "tier": r.tier,
                "handler": r.holder,
                "handler_name": j.holder_name(r.holder),
                "lead": r.lead,
                "lead_name": j.holder_name(r.lead),
                "assisting": list(r.assisting or []),
                "colour": r.colour,
                "due": j.local(_utc(r.due_at)).isoformat() if r.due_at else None,
                "registered_at": j.local(_utc(r.registered_at)).isoformat(),
                "area_code": r.area_code,
                "street": r.street_code,
                "street_name": _area_name(j, r.street_code),
                "community": r.community_code,
                "community_name": _area_name(j, r.community_code),
                "grid": r.area_code if grid is not None and grid.level == "grid" else None,
                "area_name": grid.name if grid else None,
                "description": text(r.description),
                "address": text(r.address),
                "escalations": r.escalations,
                "channel": r.channel,
            }
        )
    return shown


def totals(conn: sa.Connection, where: list) -> dict[str, int]:
    counts = {"all": 0, **{c: 0 for c in v.COLOURS}, NO_COLOUR: 0}
    for colour, n in conn.execute(
        sa.select(cases.c.colour, sa.func.count()).where(*where).group_by(cases.c.colour)
    ):
        counts["all"] += n
        key = colour if colour in v.COLOURS else NO_COLOUR if colour is None else None
        if key is not None:
            counts[key] += n
    return counts


def _page(conn: sa.Connection, where: list, sort: str, limit: int) -> list:
    """The first ``limit`` rows of ``where`` in ``sort``'s order. The order is found on the sort
    key and id alone (the indexes hold both: no row is read to sort), then only those rows are
    read whole."""
    keys = conn.execute(
        sa.select(cases.c.case_id).where(*where).order_by(*_order(sort)).limit(limit)
    ).scalars()
    ids = list(keys)
    if not ids:
        return []
    found = {
        r.case_id: r
        for r in conn.execute(sa.select(*_ITEM_COLUMNS).where(cases.c.case_id.in_(ids)))
    }
    return [found[i] for i in ids if i in found]


def list_cases(
    conn: sa.Connection,
    query: CaseQuery,
    principal: a.Principal,
    j: Jurisdiction,
    now: dt.datetime,
    cursor_key: bytes,
) -> dict:
    """``{"items", "totals", "next"}`` for ``GET /api/v1/cases``."""
    where = conditions(query, principal, j, now)
    page = list(where)
    if query.cursor:
        page.append(_after(query, *read_cursor(cursor_key, query)))
    rows = _page(conn, page, query.sort, query.limit + 1)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    last = rows[-1] if rows and more else None
    return {
        "items": items(conn, rows, principal, j),
        "totals": totals(conn, where),
        "next": (
            make_cursor(cursor_key, query, _sort_value(query.sort, last), last.case_id)
            if last is not None
            else None
        ),
    }


def _department_of(j: Jurisdiction, lead: str | None, holder: str | None) -> str | None:
    """The department a case counts for on the board: its lead, else its holder's."""
    if lead:
        return lead
    if holder is None:
        return None
    if j.department(holder) is not None:
        return holder
    unit = j.unit(holder)
    return unit.department_code if unit else None


def summary(
    conn: sa.Connection, query: CaseQuery, principal: a.Principal, j: Jurisdiction, now: dt.datetime
) -> dict:
    """``GET /api/v1/board/summary``: the open cases of the filter, counted by colour, tier,
    department and street, and the yellow, orange and red ones, the latest first."""
    where = conditions(query, principal, j, now)
    where.append(cases.c.status.in_(lifecycle.OPEN_STATUSES))
    # One pass over the open cases: grouped by everything the board counts by (a few thousand
    # groups at most), then added up here.
    groups = (cases.c.colour, cases.c.tier, cases.c.lead, cases.c.holder, cases.c.street_code)
    by_colour = {"all": 0, **{c: 0 for c in v.COLOURS}, NO_COLOUR: 0}
    by_tier: dict[str, int] = {}
    by_department: dict[str | None, int] = {}
    by_street: dict[str | None, int] = {}
    for colour, tier, lead, holder, street, n in conn.execute(
        sa.select(*groups, sa.func.count()).where(*where).group_by(*groups)
    ):
        by_colour["all"] += n
        key = colour if colour in v.COLOURS else NO_COLOUR if colour is None else None
        if key is not None:
            by_colour[key] += n
        by_tier[tier or NO_COLOUR] = by_tier.get(tier or NO_COLOUR, 0) + n
        department = _department_of(j, lead, holder)
        by_department[department] = by_department.get(department, 0) + n
        by_street[street] = by_street.get(street, 0) + n
    late_rows = _page(
        conn, [*where, cases.c.colour.in_(WARNING_COLOURS)], "lateness", SUMMARY_LATE_LIMIT
    )

    def department_name(code: str | None) -> str | None:
        department = j.department(code) if code else None
        return department.name_zh if department else None

    return {
        "now": j.local(_utc(now)).isoformat(),
        "open": by_colour["all"],
        "by_colour": {k: n for k, n in by_colour.items() if k != "all"},
        "by_tier": dict(sorted(by_tier.items())),
        "by_department": [
            {"code": code, "name": department_name(code), "count": n}
            for code, n in sorted(by_department.items(), key=lambda kv: (-kv[1], kv[0] or ""))
        ],
        "by_street": [
            {"code": code, "name": _area_name(j, code), "count": n}
            for code, n in sorted(by_street.items(), key=lambda kv: (-kv[1], kv[0] or ""))
        ],
        "late": items(conn, late_rows, principal, j),
    }
