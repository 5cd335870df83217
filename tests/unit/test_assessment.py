"""Assessment (考核): the figures of a small seeded week, worked out by hand, through the API
(JSON, CSV, Excel) on the embedded default's SQLite; the refusals; the city's weights.

The cases are written straight into intake's tables with the instants and timeline entries a
real case leaves (registered, dispatched, warning, resolved, verification_failed, returned,
routed, extension_requested), so each figure has one known answer. One case also travels the
real way (report, dispatch, resolve, verify, evaluate) to pin that the entries read are the
ones intake writes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import assessment as asm
from gridflow_common.domain.jurisdiction_files import JurisdictionError, parse_jurisdiction
from gridflow_intake import assessment as queries
from gridflow_intake import models
from gridflow_intake.identity import BEARER
from tests.conftest import lucheng_files
from tests.credentials import SignedApi
from tests.unit.test_intake_cases import _pump

CST = dt.timezone(dt.timedelta(hours=8))
URBAN = "urban_management-330302104"
POLICE = "police-330302104"
WUMA_URBAN = "urban_management-330302001"
G1 = "330302104001001"  # 戍浦社区第1网格, grid worker 钟敏军
G2 = "330302104001002"
WUMA_G1 = "330302001001001"  # 五马街道 青园社区第1网格, grid worker 吴辉
PERIOD = "from=2026-01-05&to=2026-01-11"


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, minute, tzinfo=CST)


@dataclass
class Seed:
    case_id: str
    holder: str
    lead: str
    area: str
    registered: dt.datetime
    status: str = "dispatched"
    closed: dt.datetime | None = None
    satisfaction: int | None = None
    # (kind, instant, detail)
    entries: list[tuple[str, dt.datetime, dict]] = field(default_factory=list)


def seeds() -> list[Seed]:
    return [
        # On time, 10 h from dispatch to resolved, satisfaction 5.
        Seed(
            "GF-A",
            URBAN,
            "urban_management",
            G1,
            at(5, 9),
            "closed",
            at(6, 9),
            5,
            [
                ("dispatched", at(5, 10), {"handler": URBAN}),
                ("resolved", at(5, 20), {"sender": URBAN}),
                ("verified", at(6, 9), {}),
            ],
        ),
        # Late (orange before resolved), an extension asked, 48 h, satisfaction 3.
        Seed(
            "GF-B",
            URBAN,
            "urban_management",
            G1,
            at(5, 11),
            "closed",
            at(7, 14),
            3,
            [
                ("dispatched", at(5, 12), {"handler": URBAN}),
                ("extension_requested", at(6, 10), {"sender": URBAN}),
                ("warning", at(6, 12), {"colour": "yellow"}),
                ("warning", at(6, 13), {"colour": "orange"}),
                ("resolved", at(7, 12), {"sender": URBAN}),
                ("verified", at(7, 14), {}),
            ],
        ),
        # Reworked after a failed verification; from the first dispatch to the last
        # resolution: 6 h; not evaluated.
        Seed(
            "GF-C",
            URBAN,
            "urban_management",
            G2,
            at(6, 8),
            "closed",
            at(6, 16),
            None,
            [
                ("dispatched", at(6, 9), {"handler": URBAN}),
                ("resolved", at(6, 11), {"sender": URBAN}),
                ("verification_failed", at(6, 12), {}),
                ("routed", at(6, 12), {"reason": "rework"}),
                ("dispatched", at(6, 12), {"handler": URBAN}),
                ("resolved", at(6, 15), {"sender": URBAN}),
                ("verified", at(6, 16), {}),
            ],
        ),
        # Returned by the police station, escalated; now with urban management, open.
        Seed(
            "GF-D",
            URBAN,
            "urban_management",
            G1,
            at(7, 8),
            "dispatched",
            None,
            None,
            [
                ("dispatched", at(7, 9), {"handler": POLICE}),
                ("returned", at(7, 10), {"sender": POLICE}),
                ("routed", at(7, 10, 5), {"reason": "escalated"}),
                ("dispatched", at(7, 10, 5), {"handler": URBAN}),
            ],
        ),
        # Registered the evening before the period (local), first dispatched inside it,
        # closed after it: counts as dispatched only.
        Seed(
            "GF-E",
            URBAN,
            "urban_management",
            G2,
            at(4, 23),
            "closed",
            at(12, 1),
            None,
            [
                ("dispatched", at(5, 0, 30), {"handler": URBAN}),
                ("resolved", at(11, 23), {"sender": URBAN}),
            ],
        ),
        # Registered at 23:30 on the last day (local): inside.
        Seed("GF-F", POLICE, "police", G2, at(11, 23, 30), "registered"),
        # Registered at 00:30 on the day after (local; still the 11th in UTC): outside.
        Seed("GF-G", POLICE, "police", G2, at(12, 0, 30), "registered"),
        # Another street's case: closed late (red), evaluated 4, 24 h.
        Seed(
            "GF-H",
            WUMA_URBAN,
            "urban_management",
            WUMA_G1,
            at(8, 9),
            "closed",
            at(9, 12),
            4,
            [
                ("dispatched", at(8, 10), {"handler": WUMA_URBAN}),
                ("warning", at(9, 9), {"colour": "red"}),
                ("resolved", at(9, 10), {"sender": WUMA_URBAN}),
                ("verified", at(9, 12), {}),
            ],
        ),
    ]


def seed(gridflow, rows: list[Seed]) -> None:
    seed_into(gridflow.runtimes[c.INTAKE], rows)


def seed_into(intake, rows: list[Seed]) -> None:
    """The cases and their timelines as rows, into intake's tables (``intake``: its runtime);
    the PostgreSQL test seeds the same week the same way."""
    with intake.work() as work:
        version = work.active_jurisdiction()[0]
        for s in rows:
            work.db.execute(
                sa.insert(models.cases),
                dict(
                    case_id=s.case_id,
                    status=s.status,
                    category="component.streetlight",
                    description="路灯不亮",
                    area_code=s.area,
                    assisting=[],
                    holder=s.holder,
                    lead=s.lead,
                    escalations=0,
                    reporters=1,
                    satisfaction=s.satisfaction,
                    jurisdiction_version=version,
                    registered_at=s.registered,
                    closed_at=s.closed,
                ),
            )
            for kind, instant, detail in [("registered", s.registered, {}), *s.entries]:
                work.db.execute(
                    sa.insert(models.timeline),
                    dict(case_id=s.case_id, at=instant, kind=kind, detail=detail),
                )


@pytest.fixture
def api(gridflow):
    seed(gridflow, seeds())
    return SignedApi(gridflow)


def _get(api, query: str, headers=None):
    return api.handle("GET", f"/api/v1/assessment?{query}", headers=headers)


def _rows(answer) -> dict:
    assert answer.status == 200, answer.body
    return {row["key"]: row for row in answer.body["rows"]}


# By hand, for the week 2026-01-05 .. 2026-01-11 (Asia/Shanghai):
# urban_management (A, B, C, D, E, H): registered A B C D H = 5 (E the day before);
# dispatched A B C D E H = 6 (D's first dispatch, to the police station, counts for D's
# lead now); closed A B C H = 4, late B H = 2, on time 2; returned 0 (the police returned
# D); rework C = 1/4; extension B = 1/4; escalations D = 1; handling (10 + 48 + 6 + 24) / 4
# = 22 h; satisfaction (5 + 3 + 4) / 3 = 4.
# police (F): registered 1 (G falls on the 12th, local); returned 1 (D).
EXPECTED_URBAN = {
    "registered": 5,
    "dispatched": 6,
    "closed": 4,
    "closed_on_time": 2,
    "closed_late": 2,
    "returned": 0,
    "rework_rate": 0.25,
    "extension_rate": 0.25,
    "escalations": 1,
    "avg_handling_hours": 22.0,
    "avg_satisfaction": 4.0,
}


def test_department_figures_match_the_hand_computed_week(api):
    rows = _rows(_get(api, f"by=department&{PERIOD}"))
    assert set(rows) == {"urban_management", "police"}
    urban = rows["urban_management"]
    assert {k: urban[k] for k in EXPECTED_URBAN} == EXPECTED_URBAN
    assert urban["name"] == "鹿城区综合行政执法局"  # departments.csv's name_zh
    # score = 100 × (40 × 2/4 + 30 × (4 − 1)/4 + 20 × (1 − 1/4) + 10 × (1 − 1/4)) / 100
    assert urban["score"] == pytest.approx(
        100 * (40 * 0.5 + 30 * 0.75 + 20 * 0.75 + 10 * 0.75) / 100
    )
    police = rows["police"]
    assert (police["registered"], police["returned"], police["closed"]) == (1, 1, 0)
    # Nothing closed and nothing evaluated: no score, no rates.
    assert police["score"] is None and police["rework_rate"] is None


def test_unit_rows_split_the_department_and_returns_go_to_who_returned(api):
    rows = _rows(_get(api, f"by=unit&{PERIOD}"))
    assert rows[URBAN]["closed"] == 3 and rows[WUMA_URBAN]["closed"] == 1
    assert rows[WUMA_URBAN]["closed_late"] == 1 and rows[WUMA_URBAN]["avg_handling_hours"] == 24
    assert rows[POLICE]["returned"] == 1 and rows[URBAN]["returned"] == 0
    assert rows[POLICE]["name"] == "藤桥派出所"


def test_area_groupings_roll_grids_up(api):
    streets = _rows(_get(api, f"by=street&{PERIOD}"))
    assert set(streets) == {"330302104", "330302001"}
    assert streets["330302104"]["registered"] == 5  # A B C D F
    assert streets["330302104"]["closed"] == 3
    assert streets["330302001"]["closed_late"] == 1
    communities = _rows(_get(api, f"by=community&{PERIOD}"))
    assert communities["330302104001"]["registered"] == 5
    workers = _rows(_get(api, f"by=grid_worker&{PERIOD}"))
    assert workers[G1]["registered"] == 3 and workers[G2]["registered"] == 2
    assert "钟敏军" in workers[G1]["name"]
    assert workers[G1]["returned"] == 1  # D was returned in G1


def test_sql_sums_equal_the_in_memory_reference(gridflow, api):
    """The SQL aggregation and the domain's ``tally_cases`` agree on every seeded case."""
    start, end = asm.period(dt.date(2026, 1, 5), dt.date(2026, 1, 11), CST)
    outcomes = []
    for s in seeds():
        kinds = [(k, t, d) for k, t, d in s.entries]
        dispatches = [t for k, t, _ in kinds if k == "dispatched"]
        resolved = [t for k, t, _ in kinds if k == "resolved" and s.closed and t <= s.closed]
        outcomes.append(
            asm.CaseOutcome(
                key=s.area,
                registered_at=s.registered,
                first_dispatched_at=min(dispatches) if dispatches else None,
                closed_at=s.closed,
                resolved_at=max(resolved) if resolved else None,
                late=any(k == "warning" and d["colour"] in asm.LATE_COLOURS for k, _, d in kinds),
                reworked=any(k in asm.REWORK_ENTRY_KINDS for k, _, _ in kinds),
                extended=any(k == "extension_requested" for k, _, _ in kinds),
                satisfaction=s.satisfaction,
                returns=tuple(t for k, t, _ in kinds if k == "returned"),
                escalations=tuple(
                    t for k, t, d in kinds if k == "routed" and d.get("reason") == "escalated"
                ),
            )
        )
    reference = asm.tally_cases(outcomes, start, end)
    with gridflow.runtimes[c.INTAKE].work() as work:
        sums = queries.tallies(work, asm.BY_GRID_WORKER, start, end, sa.true())
    assert {k: t for k, t in sums.items() if not t.empty} == reference


def test_csv_is_excel_ready_and_says_what_the_json_says(api):
    data = _get(api, f"by=unit&{PERIOD}").body["rows"]
    answer = _get(api, f"by=unit&{PERIOD}&format=csv")
    assert answer.status == 200
    assert answer.content_type.startswith("text/csv")
    assert answer.headers["Content-Disposition"] == (
        'attachment; filename="assessment-unit-2026-01-05-2026-01-11.csv"'
    )
    assert answer.body.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(answer.body.decode("utf-8-sig"))))
    assert lines[0] == [zh for _, zh in asm.COLUMNS]
    assert len(lines) == len(data) + 1
    for line, row in zip(lines[1:], data, strict=True):
        for (key, _), cell in zip(asm.COLUMNS, line, strict=True):
            assert cell == ("" if row[key] is None else str(row[key])), (key, cell, row[key])


def test_xlsx_has_a_frozen_header_and_the_json_numbers_as_numbers(api):
    from openpyxl import load_workbook

    data = _get(api, f"by=department&{PERIOD}").body["rows"]
    answer = _get(api, f"by=department&{PERIOD}&format=xlsx")
    assert answer.status == 200 and answer.content_type.endswith("spreadsheetml.sheet")
    assert answer.headers["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(answer.body)).active
    assert sheet.freeze_panes == "A2"
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == [zh for _, zh in asm.COLUMNS]
    for line, row in zip(values[1:], data, strict=True):
        assert list(line) == [row[key] for key, _ in asm.COLUMNS]
    urban = next(line for line in values[1:] if line[0] == "urban_management")
    assert isinstance(urban[2], int) and isinstance(urban[8], float)


def test_a_name_that_looks_like_a_formula_is_neutralised():
    text = asm.to_csv([{"key": '=HYPERLINK("x")', "name": "@SUM(A1)", "registered": -3}])
    lines = list(csv.reader(io.StringIO(text.decode("utf-8-sig"))))
    assert lines[1][:3] == ['\'=HYPERLINK("x")', "'@SUM(A1)", "-3"]
    assert asm.safe_cell("+1") == "'+1" and asm.safe_cell("-x") == "'-x"
    assert asm.safe_cell(-3) == -3 and asm.safe_cell("正常") == "正常"


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("by=district", "by", "Must be one of"),
        ("format=pdf", "format", "Must be one of"),
        ("from=2026-13-01&to=2026-12-31", "from", "not a date"),
        ("from=2026-01-05&to=tomorrow", "to", "not a date"),
        ("from=2026-01-10&to=2026-01-05", "from", "after"),
        ("from=2020-01-01&to=2026-01-01", "to", "at most"),
        ("from=2026-01-05&to=2026-01-11&sort=score", "sort", "Unknown field"),
        ("by=unit&by=street", "by", "once"),
    ],
)
def test_bad_queries_are_refused_naming_the_field(api, query, field, words):
    answer = _get(api, query)
    assert answer.status == 400, answer.body
    assert words in " ".join(answer.body["errors"][field]), answer.body


def test_without_dates_the_month_so_far_is_assessed(api, gridflow):
    gridflow.runtimes[c.INTAKE].clock.set(at(20, 12))
    answer = _get(api, "by=department")
    assert answer.status == 200, answer.body
    assert (answer.body["from"], answer.body["to"]) == ("2026-01-01", "2026-01-20")
    assert _rows(answer)["urban_management"]["registered"] == 6  # E too


def test_the_citys_weights_are_used_and_shown(gridflow):
    files = lucheng_files()
    files["assessment.csv"] = (
        "weight,value\non_time,100\nsatisfaction,0\nno_rework,0\nno_extension,0\n"
    )
    gridflow.runtimes[c.INTAKE].jurisdictions.install(files)
    seed(gridflow, seeds())
    answer = _get(SignedApi(gridflow), f"by=department&{PERIOD}")
    assert answer.body["weights"] == {
        "on_time": 100.0,
        "satisfaction": 0.0,
        "no_rework": 0.0,
        "no_extension": 0.0,
    }
    assert _rows(answer)["urban_management"]["score"] == 50.0  # 2 of 4 on time


def test_a_bad_weights_file_is_refused_with_its_line_and_column():
    files = lucheng_files()
    files["assessment.csv"] = "weight,value\non_time,-1\nspeed,3\n"
    with pytest.raises(JurisdictionError) as refused:
        parse_jurisdiction(files)
    problems = {(p.file, p.line, p.column) for p in refused.value.problems}
    assert problems == {("assessment.csv", 2, "value"), ("assessment.csv", 3, "weight")}


def test_a_case_that_travels_the_real_way_is_assessed(gridflow):
    """Report, dispatch, resolve, verify, evaluate: the entries intake writes are the ones read."""
    api = SignedApi(gridflow)
    intake = gridflow.runtimes[c.INTAKE]
    intake.clock.set(at(5, 9))
    report = {
        "channel": "web",
        "description": "藤桥戍浦社区门口的路灯不亮",
        "category": "component.streetlight",
        "location": {"lat": 28.05, "lon": 120.64},
    }

    answer = api.handle("POST", "/api/v1/reports", json.dumps(report).encode())
    assert answer.status == 201, answer.body
    case_id = answer.body["case_id"]
    _pump(gridflow)
    intake.clock.set(at(5, 12))
    for status in ("accepted", "resolved"):
        body = json.dumps({"status": status, "from": URBAN}).encode()
        assert api.handle("POST", f"/api/v1/cases/{case_id}/updates", body).status == 202
    _pump(gridflow)
    intake.clock.set(at(5, 13))
    body = json.dumps({"passed": True}).encode()
    assert api.handle("POST", f"/api/v1/cases/{case_id}/verification", body).status == 200
    body = json.dumps({"satisfaction": 4}).encode()
    assert api.handle("POST", f"/api/v1/cases/{case_id}/evaluation", body).status == 200
    row = _rows(_get(api, "by=unit&from=2026-01-05&to=2026-01-05"))[URBAN]
    assert (row["registered"], row["dispatched"], row["closed"], row["closed_on_time"]) == (
        1,
        1,
        1,
        1,
    )
    assert row["avg_handling_hours"] == 3.0 and row["avg_satisfaction"] == 4.0


# -- scope: the figures are of the caller's cases (the scope clause is the cases list's) --------


def _token(gridflow, username: str, role: str, scope: str | None) -> str:
    """A user made through the admin API, with a bearer token of its own."""
    api = SignedApi(gridflow)
    body = {"username": username, "role": role, "scope": scope}
    created = api.handle("POST", "/api/v1/admin/users", json.dumps(body).encode())
    assert created.status == 201, created.body
    _, token = gridflow.identities().issue(
        BEARER, label=f"test {username}", user_id=created.body["user"]["user_id"]
    )
    return token


@pytest.fixture
def scoped(gridflow):
    seed(gridflow, seeds())
    return gridflow


def test_a_department_user_sees_its_own_department_rows_only(scoped):
    from gridflow_common.domain import access as a

    token = _token(scoped, "assess-urban", a.DEPARTMENT, "urban_management")
    headers = {"Authorization": f"Bearer {token}"}
    api = SignedApi(scoped)
    departments = _rows(_get(api, f"by=department&{PERIOD}", headers))
    assert set(departments) == {"urban_management"}
    assert {k: departments["urban_management"][k] for k in EXPECTED_URBAN} == EXPECTED_URBAN
    units = _rows(_get(api, f"by=unit&{PERIOD}", headers))
    assert set(units) == {URBAN, WUMA_URBAN}  # not the police station that returned D


def test_a_street_user_sees_its_streets_cases_only(scoped):
    from gridflow_common.domain import access as a

    token = _token(scoped, "assess-wuma", a.STREET, "330302001")
    headers = {"Authorization": f"Bearer {token}"}
    api = SignedApi(scoped)
    assert set(_rows(_get(api, f"by=street&{PERIOD}", headers))) == {"330302001"}
    urban = _rows(_get(api, f"by=department&{PERIOD}", headers))["urban_management"]
    assert (urban["registered"], urban["closed"], urban["closed_late"]) == (1, 1, 1)  # H only
