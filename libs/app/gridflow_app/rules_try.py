"""``gridflow rules try RULES``: rehearse (演练) a proposed rules file on past cases.

Every case is routed twice as a new case, under the rules in force (the jurisdiction's own
rules.yaml, or none) and under the proposed ones (the same jurisdiction with RULES as its
rules.yaml), with routing's own decision function, in this process: nothing is written, no event
leaves. What is printed: per unit, how many cases it would get under each; which cases would move
(case id, from unit -> to unit, the rule); and which cases would have turned red under the new
limits (SLA's working-calendar arithmetic, from registration to the case's actual resolution).

Cases come from a file (``--cases``; CSV with a header row, or JSON Lines) with the columns

    case_id, category, area_code, channel, description, registered_at, resolved_at

(``registered_at`` and ``resolved_at`` ISO 8601, with an offset or in the city's local time;
``resolved_at`` empty for a case not resolved; ``category`` empty for an unclassified case), or
from the database's intake cases registered between ``--from`` and ``--to`` (dates, the city's
local days, both included), read in a read-only transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridflow_common.domain.calendar import SlaClock, colour_for
from gridflow_common.domain.jurisdiction_files import JurisdictionError, parse_jurisdiction
from gridflow_common.domain.rules import Facts
from gridflow_common.domain.vocabulary import RED

CASE_COLUMNS = (
    "case_id",
    "category",
    "area_code",
    "channel",
    "description",
    "registered_at",
    "resolved_at",
)
REQUIRED_COLUMNS = ("case_id", "area_code", "registered_at")


class CasesRefused(ValueError):
    """A cases file that cannot be read: each problem with its line."""

    def __init__(self, problems: Sequence[str]):
        super().__init__("\n  ".join(["cases refused:", *problems]))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class PastCase:
    case_id: str
    category: str | None
    area_code: str
    channel: str | None
    description: str
    registered_at: dt.datetime
    resolved_at: dt.datetime | None


@dataclass(frozen=True)
class Outcome:
    case: PastCase
    holder: str
    rule_id: str
    limit_text: str
    red: bool | None  # None: not resolved, so not judged


@dataclass(frozen=True)
class Rehearsal:
    current: tuple[Outcome, ...]
    proposed: tuple[Outcome, ...]

    def per_unit(self) -> list[tuple[str, int, int]]:
        now = Counter(o.holder for o in self.current)
        then = Counter(o.holder for o in self.proposed)
        units = sorted(set(now) | set(then), key=lambda u: (-(then[u] - now[u]), u))
        return [(u, now[u], then[u]) for u in units]

    def moves(self) -> list[tuple[Outcome, Outcome]]:
        return [
            (a, b) for a, b in zip(self.current, self.proposed, strict=True) if a.holder != b.holder
        ]

    def newly_red(self) -> list[tuple[Outcome, Outcome]]:
        return [
            (a, b) for a, b in zip(self.current, self.proposed, strict=True) if b.red and not a.red
        ]


# --------------------------------------------------------------------------- routing them


def _decide(j: Any, case: PastCase) -> Outcome:
    from gridflow_routing import domain

    category = j.category(case.category) if case.category else None
    facts = Facts(
        category=case.category if category else None,
        area_code=case.area_code,
        channel=case.channel,
        local_time=j.local(case.registered_at).time(),
        text=case.description,
    )
    try:
        decided = domain.route_by_rules(j, category, facts)
    except domain.RoutingImpossible as exc:
        return Outcome(case, f"(no unit: {exc})", "-", "-", None)
    limit = decided.time_limit or (category.limit if category else j.triage_limit)
    red: bool | None = None
    if case.resolved_at is not None:
        clock = SlaClock.start(case.registered_at, limit, j.calendar)
        fraction = clock.fraction(case.resolved_at, j.calendar)
        red = colour_for(fraction, j.warning_levels).colour == RED
    limit_text = f"{limit.amount} {limit.unit.value}"
    if decided.limit_rule_id:
        limit_text += f" ({decided.limit_rule_id})"
    return Outcome(case, decided.holder, decided.rule_id, limit_text, red)


def rehearse(current: Any, proposed: Any, cases: Iterable[PastCase]) -> Rehearsal:
    listed = list(cases)
    return Rehearsal(
        tuple(_decide(current, c) for c in listed), tuple(_decide(proposed, c) for c in listed)
    )


# --------------------------------------------------------------------------- reading cases


def _instant(text: str, zone: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def read_cases(path: Path, j: Any) -> list[PastCase]:
    """The cases of a CSV (header row) or JSON Lines file; refused whole, every problem named
    with its line."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CasesRefused([f"{path}: not UTF-8 (bad byte at offset {exc.start})"]) from None
    records: list[tuple[int, dict]] = []
    problems: list[str] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                problems.append(f"{path.name} line {number}: not JSON: {exc}")
                continue
            if not isinstance(item, dict):
                problems.append(f"{path.name} line {number}: expected a JSON object")
                continue
            records.append((number, {k: "" if v is None else str(v) for k, v in item.items()}))
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise CasesRefused(
                [
                    f"{path.name} line 1: missing column(s) {', '.join(missing)}; the columns are "
                    + ", ".join(CASE_COLUMNS)
                ]
            )
        for number, row in enumerate(reader, start=2):
            records.append((number, {k: (v or "").strip() for k, v in row.items() if k}))
    cases = []
    for number, row in records:
        where = f"{path.name} line {number}"
        lacking = [c for c in REQUIRED_COLUMNS if not row.get(c)]
        if lacking:
            problems.append(f"{where}: {', '.join(lacking)} empty")
            continue
        if j.area(row["area_code"]) is None:
            problems.append(f"{where}: unknown area '{row['area_code']}'")
            continue
        try:
            registered = _instant(row["registered_at"], j.zone)
            resolved = _instant(row["resolved_at"], j.zone) if row.get("resolved_at") else None
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        cases.append(
            PastCase(
                row["case_id"],
                row.get("category") or None,
                row["area_code"],
                row.get("channel") or None,
                row.get("description", ""),
                registered,
                resolved,
            )
        )
    if problems:
        raise CasesRefused(problems)
    return cases


def cases_from_database(engine: Any, j: Any, first: dt.date, last: dt.date) -> list[PastCase]:
    """Intake's cases registered on the city's local days ``first`` to ``last``, read in a
    read-only transaction (PostgreSQL refuses any write in it)."""
    import sqlalchemy as sa

    from gridflow_intake.models import cases

    start = dt.datetime.combine(first, dt.time(), tzinfo=j.zone)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=j.zone)
    query = (
        sa.select(
            cases.c.case_id,
            cases.c.category,
            cases.c.area_code,
            cases.c.channel,
            cases.c.description,
            cases.c.registered_at,
            cases.c.closed_at,
        )
        .where(cases.c.registered_at >= start, cases.c.registered_at < end)
        .order_by(cases.c.registered_at, cases.c.case_id)
    )
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        rows = conn.execute(query).all()
        conn.rollback()
    return [
        PastCase(
            r.case_id,
            r.category,
            r.area_code,
            r.channel,
            r.description or "",
            r.registered_at,
            r.closed_at,
        )
        for r in rows
    ]


# --------------------------------------------------------------------------- printing


def report(rehearsal: Rehearsal, j: Any, out: Any) -> None:
    def name(code: str) -> str:
        return j.holder_name(code) or ""

    count = len(rehearsal.current)
    print(f"演练 rehearsal: {count} case(s)", file=out)
    print("\nper unit (current -> proposed):", file=out)
    width = max((len(u) for u, _, _ in rehearsal.per_unit()), default=4)
    for unit, now, then in rehearsal.per_unit():
        change = then - now
        sign = f"{change:+d}" if change else "0"
        print(f"  {unit:<{width}}  {now:>5} -> {then:<5} ({sign})  {name(unit)}", file=out)
    moves = rehearsal.moves()
    print(f"\nmoves ({len(moves)}):", file=out)
    for a, b in moves:
        print(
            f"  {a.case.case_id}: {a.holder} -> {b.holder} (rule {b.rule_id}; was {a.rule_id})",
            file=out,
        )
    red = rehearsal.newly_red()
    print(f"\nwould have turned red under the new limits ({len(red)}):", file=out)
    for a, b in red:
        print(
            f"  {b.case.case_id}: limit {b.limit_text}, was {a.limit_text}; resolved "
            f"{j.local(b.case.resolved_at):%Y-%m-%d %H:%M}",
            file=out,
        )
    unjudged = sum(1 for o in rehearsal.proposed if o.red is None)
    if unjudged:
        print(f"  ({unjudged} case(s) not resolved: not judged)", file=out)


# --------------------------------------------------------------------------- the command


def _jurisdictions(args: Any, rules_text: str) -> tuple[Any, Any, str] | int:
    """(current, proposed, where from), or an exit status after printing why."""
    if args.cases:
        from gridflow_app.folders import LUCHENG, jurisdiction_files

        folder = Path(args.jurisdiction) if args.jurisdiction else LUCHENG
        files = jurisdiction_files(folder)
        source = str(folder)
        engine = None
    else:
        from gridflow_common.db import make_engine
        from gridflow_common.jurisdictions import JurisdictionStore, NoJurisdiction

        engine = make_engine(args.database_url)
        store = JurisdictionStore(engine)
        try:
            version = store.active_version()
        except NoJurisdiction as exc:
            print(f"no jurisdiction in the database: {exc}", file=sys.stderr)
            return 2
        import sqlalchemy as sa

        from gridflow_common.db import jurisdiction_table

        with engine.connect() as conn:
            files = conn.execute(
                sa.select(jurisdiction_table.c.files).where(jurisdiction_table.c.version == version)
            ).scalar_one()
        source = f"jurisdiction version {version}"
    try:
        current = parse_jurisdiction(files)
        proposed = parse_jurisdiction({**files, "rules.yaml": rules_text})
    except JurisdictionError as exc:
        print(f"refused: {args.rules}\n{exc}", file=sys.stderr)
        return 2
    args._engine = engine
    return current, proposed, source


def cmd_rules_try(args: Any) -> int:
    path = Path(args.rules)
    try:
        rules_text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(
            f"refused: {path}\n  rules.yaml: not UTF-8 (bad byte at offset {exc.start})",
            file=sys.stderr,
        )
        return 2
    if not args.cases and not (args.date_from and args.date_to):
        print("give --cases FILE, or --from DATE and --to DATE", file=sys.stderr)
        return 2
    found = _jurisdictions(args, rules_text)
    if isinstance(found, int):
        return found
    current, proposed, source = found
    try:
        if args.cases:
            cases = read_cases(Path(args.cases), current)
        else:
            first = dt.date.fromisoformat(args.date_from)
            last = dt.date.fromisoformat(args.date_to)
            cases = cases_from_database(args._engine, current, first, last)
    except (CasesRefused, ValueError, OSError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        if args._engine is not None:
            args._engine.dispose()
    print(f"current rules: {source}; proposed: {path}")
    report(rehearse(current, proposed, cases), proposed, sys.stdout)
    return 0


def add_parser(sub: Any) -> None:
    rules = sub.add_parser("rules", help="the city's routing rules (rules.yaml)")
    actions = rules.add_subparsers(dest="action", required=True)
    attempt = actions.add_parser(
        "try", help="rehearse (演练) a rules file on past cases; changes nothing"
    )
    attempt.add_argument("rules", help="the proposed rules.yaml")
    attempt.add_argument("--cases", help="a CSV or JSON Lines file of past cases (docs/rules.md)")
    attempt.add_argument(
        "--from", dest="date_from", help="first day (YYYY-MM-DD), from the database"
    )
    attempt.add_argument("--to", dest="date_to", help="last day (YYYY-MM-DD), included")
    attempt.add_argument(
        "--jurisdiction", help="with --cases: the jurisdiction folder (default: shipped Lucheng)"
    )
    attempt.add_argument("--database-url", help="with --from/--to (default: the configured one)")
