"""The cases a caller may read, as SQL (gridflow_intake.scope): for every kind of caller Lucheng
can have and a few hundred cases of every shape (every area, holders of every kind, leads,
assisting departments and units, codes the city does not know), the clause selects exactly the
cases ``access.may_read_case`` allows, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random

import pytest
import sqlalchemy as sa

from gridflow_app.folders import LUCHENG
from gridflow_common.domain import access as a
from gridflow_common.domain.jurisdiction_files import load_folder
from gridflow_intake import models
from gridflow_intake.scope import case_scope_clause
from tests.conftest import fresh_database

J = load_folder(LUCHENG)
CASES_PER_RUN = 500


def _principals() -> list[a.Principal]:
    def user(role: str, scope: str | None) -> a.Principal:
        return a.Principal(a.USER, f"u-{role}-{scope}", role, "k-u", role=role, scope=scope)

    def holder(code: str | None) -> a.Principal:
        return a.Principal(a.HOLDER_KEY, f"h-{code}", str(code), "k-h", scope=code)

    units = [u.code for u in J.units]
    departments = [d.code for d in J.departments]
    people = [
        user(a.ADMIN, None),
        user(a.COMMAND_CENTER, None),
        *(user(a.COMMAND_CENTER, d) for d in J.district_codes),
        *(user(a.LEADER, u) for u in units),
        user(a.LEADER, "no-such-unit"),
        *(user(a.DEPARTMENT, code) for code in departments + units),
        user(a.DEPARTMENT, None),
        *(holder(code) for code in departments + units),
        holder(None),
        *(user(a.STREET, s.code) for s in J.areas_at("street")),
        *(user(a.COMMUNITY, c.code) for c in J.areas_at("community")),
        *(user(a.GRID_WORKER, g.code) for g in J.areas_at("grid")),
        user(a.GRID_WORKER, None),
        user("mayor", None),
        a.Principal(a.CHANNEL_KEY, "k-c", "hotline", "k-c", channel="hotline"),
    ]
    return people


def _cases(seed: int) -> list[dict]:
    rng = random.Random(seed)
    areas = [x.code for x in J.areas] + ["999999"]
    units = [u.code for u in J.units]
    departments = [d.code for d in J.departments]
    codes = units + departments + ["nobody", "a%b_c", 'quo"te']
    at = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
    rows = []
    for i in range(CASES_PER_RUN):
        holder = rng.choice([None, *units, *departments, "nobody"])
        lead = rng.choice([None, *departments, "nobody"])
        assisting = rng.sample(codes, rng.choice([0, 0, 1, 2, 3]))
        rows.append(
            dict(
                case_id=f"GF-SCOPE-{seed}-{i:04d}",
                status="dispatched",
                description="d",
                area_code=rng.choice(areas),
                holder=holder,
                lead=lead,
                assisting=assisting,
                escalations=0,
                reporters=1,
                jurisdiction_version=1,
                registered_at=at,
            )
        )
    return rows


def _facts(row: dict) -> a.CaseFacts:
    return a.CaseFacts(row["area_code"], row["holder"], row["lead"], tuple(row["assisting"]))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request, tmp_path_factory):
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("scope") / "cases.db"
        engine = sa.create_engine(f"sqlite:///{path}")
        yield engine
        engine.dispose()
        return
    server = request.getfixturevalue("database_server_url")
    with fresh_database(server) as url:
        engine = sa.create_engine(url)
        yield engine
        engine.dispose()


def test_the_clause_selects_exactly_what_may_read_case_allows(engine):
    models.cases.create(engine, checkfirst=True)
    rows = _cases(seed=8)
    with engine.begin() as conn:
        conn.execute(sa.delete(models.cases))
        conn.execute(sa.insert(models.cases), rows)
    principals = _principals()
    selected_somewhere = 0
    with engine.connect() as conn:
        for principal in principals:
            expected = {r["case_id"] for r in rows if a.may_read_case(principal, _facts(r), J)}
            got = set(
                conn.execute(
                    sa.select(models.cases.c.case_id).where(case_scope_clause(principal, J))
                ).scalars()
            )
            assert got == expected, (
                principal,
                sorted(got - expected)[:5],
                sorted(expected - got)[:5],
            )
            selected_somewhere += bool(expected) and len(expected) < len(rows)
    # The cases are varied enough that most callers see some cases and not others: the
    # equality above is tested on real partitions, not on "all" and "none" alone.
    assert selected_somewhere > len(principals) // 2


def test_read_scope_admits_exactly_what_may_read_case_allows():
    rows = _cases(seed=9)
    for principal in _principals():
        scope = a.read_scope(principal, J)
        for row in rows:
            facts = _facts(row)
            assert scope.admits(facts) == a.may_read_case(principal, facts, J), (principal, row)


def test_wildcards_and_quotes_in_an_assisting_code_match_only_themselves(engine):
    models.cases.create(engine, checkfirst=True)
    at = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
    base = dict(
        status="dispatched",
        description="d",
        area_code="999999",
        holder=None,
        lead=None,
        escalations=0,
        reporters=1,
        jurisdiction_version=1,
        registered_at=at,
    )
    with engine.begin() as conn:
        conn.execute(sa.delete(models.cases))
        conn.execute(
            sa.insert(models.cases),
            [
                dict(base, case_id="W-1", assisting=["axb_c"]),
                dict(base, case_id="W-2", assisting=["a%b_c"]),
                dict(base, case_id="W-3", assisting=["xa%b_cx", "health"]),
                dict(base, case_id="W-4", assisting=['quo"te']),
            ],
        )
    with engine.connect() as conn:

        def seen_by(code: str) -> set[str]:
            principal = a.Principal(a.HOLDER_KEY, "h", code, "k", scope=code)
            query = sa.select(models.cases.c.case_id).where(case_scope_clause(principal, J))
            return set(conn.execute(query).scalars())

        assert seen_by("a%b_c") == {"W-2"}
        assert seen_by("health") == {"W-3"}
        assert seen_by('quo"te') == {"W-4"}
        assert seen_by("b") == set()
