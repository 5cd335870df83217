"""The case list and the board's summary on the real PostgreSQL: intake_0110 fills the new
columns of the cases already there, and the list's SQL (the scope clause with its jsonb
containment, ILIKE, NULLS LAST, the keyset cursor) selects what the domain says, for callers of
every kind. Run under `nameko test`, as `make test` does."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest
import sqlalchemy as sa
from alembic import command

from gridflow_app import bootstrap
from gridflow_common import migrate
from gridflow_common.domain import access as a
from gridflow_common.domain import lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_intake import case_search as cs
from gridflow_intake import models
from tests.conftest import fresh_database, lucheng_files

pytestmark = pytest.mark.integration
KEY = b"k" * 32
NOW = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def engine(database_server_url):
    """A database of its own: intake stops at intake_0100 for the backfill test first."""
    with fresh_database(database_server_url) as url:
        engine = sa.create_engine(url)
        for name, package in bootstrap.HISTORIES.items():
            if name != "intake":
                migrate.upgrade(engine, name, package)
        with engine.begin() as conn:
            command.upgrade(
                migrate._config("intake", bootstrap.HISTORIES["intake"], conn), "intake_0100"
            )
        JurisdictionStore(engine).install(lucheng_files())
        yield engine
        engine.dispose()


def _row(case_id: str, **values) -> dict:
    return (
        dict(
            case_id=case_id,
            status=v.DISPATCHED,
            category="component.streetlight",
            description="路灯不亮",
            area_code="330302104001001",
            tier=v.STREET,
            holder="urban_management-330302104",
            lead="urban_management",
            assisting=[],
            assignment_id=f"{case_id}-1",
            escalations=0,
            reporters=1,
            jurisdiction_version=1,
            registered_at=NOW,
        )
        | values
    )


def test_intake_0110_fills_the_new_columns_of_the_cases_already_there(engine):
    old = ["case_id", "status", "category", "description", "area_code", "tier", "holder"]
    old += ["lead", "assisting", "assignment_id", "escalations", "reporters"]
    old += ["jurisdiction_version", "registered_at"]
    columns = ", ".join(old)
    values = ", ".join(f":{c}" for c in old)
    with engine.begin() as conn:
        for row in (
            _row("GF-OLD-1"),
            _row("GF-OLD-2", status=v.CLOSED, area_code="330302001"),
        ):
            row = dict(row, assisting="[]")
            conn.execute(sa.text(f"INSERT INTO intake_cases ({columns}) VALUES ({values})"), row)
            conn.execute(
                sa.text(
                    "INSERT INTO intake_reports (case_id, channel, description, received_at) "
                    "VALUES (:c, :ch, 'x', :at)"
                ),
                {"c": row["case_id"], "ch": "hotline", "at": NOW},
            )
        conn.execute(
            sa.text(
                "INSERT INTO intake_colours (assignment_id, case_id, colour, at) "
                "VALUES ('GF-OLD-1-1', 'GF-OLD-1', 'orange', :at)"
            ),
            {"at": NOW},
        )
    migrate.upgrade(engine, "intake", bootstrap.HISTORIES["intake"])
    with engine.connect() as conn:
        rows = {
            r.case_id: r
            for r in conn.execute(
                sa.select(models.cases).where(models.cases.c.case_id.like("GF-OLD-%"))
            )
        }
        indexes = set(
            conn.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'intake_cases'")
            ).scalars()
        )
    one, two = rows["GF-OLD-1"], rows["GF-OLD-2"]
    assert (one.street_code, one.community_code, one.channel, one.colour) == (
        "330302104",
        "330302104001",
        "hotline",
        "orange",
    )
    # A street-level case has a street and no community; a closed one no colour.
    assert (two.street_code, two.community_code, two.colour) == ("330302001", None, None)
    assert {"ix_intake_cases_status_due", "ix_intake_cases_assisting_gin"} <= indexes
    # Free text has trigram indexes where pg_trgm can be made (a superuser, the contrib
    # package installed), as for the tests' PostgreSQL here.
    with engine.connect() as conn:
        possible = conn.execute(
            sa.text(
                "SELECT rolsuper AND EXISTS (SELECT 1 FROM pg_available_extensions "
                "WHERE name = 'pg_trgm') FROM pg_roles WHERE rolname = current_user"
            )
        ).scalar()
    if possible:
        assert {"ix_intake_cases_description_trgm", "ix_intake_cases_address_trgm"} <= indexes
    with engine.begin() as conn:
        conn.execute(sa.delete(models.reports))
        conn.execute(sa.delete(models.cases))


def _seed(engine, j, n: int) -> list[dict]:
    rng = random.Random(11)
    grids = [x.code for x in j.areas_at("grid")]
    departments = [d.code for d in j.departments]
    units = [u.code for u in j.units]
    rows = []
    for i in range(n):
        area = rng.choice(grids)
        status = rng.choice(v.CASE_STATUSES)
        running = lifecycle.has_running_clock(status)
        rows.append(
            _row(
                f"GF-PG-{i:04d}",
                status=status,
                area_code=area,
                street_code=j.ancestor(area, "street").code,
                community_code=j.ancestor(area, "community").code,
                holder=rng.choice([None, *units]),
                lead=rng.choice([None, *departments]),
                assisting=rng.sample(departments, rng.choice([0, 1, 2])),
                colour=rng.choice(v.COLOURS) if running else None,
                due_at=NOW + dt.timedelta(minutes=rng.randint(-999, 999)) if running else None,
                registered_at=NOW - dt.timedelta(minutes=rng.randint(0, 99999)),
                description=rng.choice(["路灯不亮", "井盖 100% 缺失", "Manhole missing"]),
                channel=rng.choice(v.CHANNELS),
            )
        )
    with engine.begin() as conn:
        conn.execute(sa.insert(models.cases), rows)
    return rows


def _pages(conn, query: cs.CaseQuery, principal, j) -> list[str]:
    ids: list[str] = []
    while True:
        page = cs.list_cases(conn, query, principal, j, NOW, KEY)
        ids.extend(i["case_id"] for i in page["items"])
        if page["next"] is None:
            return ids
        query = cs.CaseQuery(**{**query.__dict__, "cursor": page["next"]})


def test_the_list_selects_on_postgresql_what_the_domain_says(engine):
    _, j = JurisdictionStore(engine).active()
    rows = _seed(engine, j, 400)
    principals = [
        a.Principal(a.USER, "cc", "cc", "k", role=a.COMMAND_CENTER),
        a.Principal(a.USER, "d", "d", "k", role=a.DEPARTMENT, scope="urban_management"),
        a.Principal(a.HOLDER_KEY, "h", "h", "k", scope="police-330302104"),
        a.Principal(a.USER, "l", "l", "k", role=a.LEADER, scope="health-330302"),
        a.Principal(a.USER, "s", "s", "k", role=a.STREET, scope="330302104"),
        a.Principal(a.USER, "g", "g", "k", role=a.GRID_WORKER, scope="330302104001001"),
    ]
    with engine.connect() as conn:
        for principal in principals:
            readable = [
                r
                for r in rows
                if a.may_read_case(
                    principal,
                    a.CaseFacts(r["area_code"], r["holder"], r["lead"], tuple(r["assisting"])),
                    j,
                )
            ]
            for sort in cs.SORTS:
                query = cs.parse_query({"sort": [sort], "limit": ["17"]}, j, paging=True)
                ids = _pages(conn, query, principal, j)
                assert sorted(ids) == sorted(r["case_id"] for r in readable), (principal, sort)
                assert len(ids) == len(set(ids))
            # Most late first; the cases with no clock last.
            query = cs.parse_query({"sort": ["lateness"], "limit": ["200"]}, j, paging=True)
            ids = _pages(conn, query, principal, j)
            timed = sorted(
                (r for r in readable if r["due_at"]), key=lambda r: (r["due_at"], r["case_id"])
            )
            assert ids[: len(timed)] == [r["case_id"] for r in timed]
            # ILIKE, its wildcards taken literally; totals by colour.
            query = cs.parse_query({"q": ["100%"], "status": ["open"]}, j, paging=True)
            page = cs.list_cases(conn, query, principal, j, NOW, KEY)
            expected = [
                r
                for r in readable
                if "100%" in r["description"] and r["status"] in lifecycle.OPEN_STATUSES
            ]
            assert page["totals"]["all"] == len(expected)
            colours = Counter(r["colour"] or "none" for r in expected)
            assert all(page["totals"][k] == colours.get(k, 0) for k in (*v.COLOURS, "none"))
            query = cs.parse_query({"q": ["manhole"]}, j, paging=True)
            page = cs.list_cases(conn, query, principal, j, NOW, KEY)
            assert page["totals"]["all"] == sum("Manhole" in r["description"] for r in readable)
            summary = cs.summary(conn, cs.parse_query({}, j, paging=False), principal, j, NOW)
            open_readable = [r for r in readable if r["status"] in lifecycle.OPEN_STATUSES]
            assert summary["open"] == len(open_readable)
            assert set(i["case_id"] for i in summary["late"]) <= {r["case_id"] for r in readable}
