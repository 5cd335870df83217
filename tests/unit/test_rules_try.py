"""`gridflow rules try`: a proposed rules file rehearsed (演练) on a small cases file, and on
the embedded database's cases; a bad rules file is refused with its file and line."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from gridflow_app import cli
from gridflow_intake.models import cases as case_table
from gridflow_routing.models import assignments
from tests.unit.test_orders import City

PROPOSED = """\
rules:
  - id: R3
    name: 夜间噪声转公安
    when: {category: event.noise, time: "22:00-06:00"}
    then: {route_to_department: police}
  - id: R7
    name: 五马街道堆物限时4小时
    when: {category: event.junk_pile, area: "330302001"}
    then: {time_limit: 4 hours}
"""
CASES = """\
case_id,category,area_code,channel,description,registered_at,resolved_at
N1,event.noise,330302001001001,hotline,深夜广场舞太吵,2026-03-02T23:10:00+08:00,2026-03-03T10:00:00+08:00
N2,event.noise,330302001001002,hotline,白天装修噪声,2026-03-02T10:00:00+08:00,
N3,event.noise,330302104001001,web,KTV 夜里吵,2026-03-03T01:30:00,2026-03-03T09:00:00
J1,event.junk_pile,330302001001001,grid_app,门口堆了旧家具,2026-03-02T09:00:00+08:00,2026-03-02T15:00:00+08:00
J2,event.junk_pile,330302104001001,grid_app,路边堆物,2026-03-02T09:00:00+08:00,2026-03-02T15:00:00+08:00
"""


def _files(tmp_path, rules: str = PROPOSED, cases: str = CASES, suffix: str = ".csv"):
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(rules, encoding="utf-8")
    cases_path = tmp_path / f"cases{suffix}"
    cases_path.write_text(cases, encoding="utf-8")
    return str(rules_path), str(cases_path)


def test_the_rehearsal_prints_counts_per_unit_moves_and_new_reds(tmp_path, capsys):
    rules, cases = _files(tmp_path)
    assert cli.main(["rules", "try", rules, "--cases", cases]) == 0
    out = capsys.readouterr().out
    units = {
        line.split()[0]: line.split()[1:4]
        for line in out.split("per unit")[1].split("moves")[0].splitlines()
        if line.startswith("  ")
    }
    # Two night noise cases leave the environment stations for the police stations.
    assert units["police-330302001"] == ["0", "->", "1"]
    assert units["police-330302104"] == ["0", "->", "1"]
    assert units["environment-330302001"] == ["2", "->", "1"]
    assert units["environment-330302104"] == ["1", "->", "0"]
    assert units["urban_management-330302001"] == ["1", "->", "1"]
    moves = out.split("moves (2):\n")[1].split("\n\n")[0].splitlines()
    assert moves == [
        "  N1: environment-330302001 -> police-330302001 (rule R3; was taxonomy)",
        "  N3: environment-330302104 -> police-330302104 (rule R3; was taxonomy)",
    ]
    # J1 took six hours: green against a working day, red against R7's four hours (x1.5).
    red = out.split("would have turned red under the new limits (1):\n")[1].splitlines()
    assert red[0] == ("  J1: limit 4 hours (R7), was 1 working_days; resolved 2026-03-02 15:00")
    assert red[1] == "  (1 case(s) not resolved: not judged)"


def test_json_lines_cases_are_read_alike(tmp_path, capsys):
    header, *rows = CASES.splitlines()
    columns = header.split(",")
    lines = [json.dumps(dict(zip(columns, row.split(","), strict=True))) for row in rows]
    rules, cases = _files(tmp_path, cases="\n".join(lines) + "\n", suffix=".jsonl")
    assert cli.main(["rules", "try", rules, "--cases", cases]) == 0
    assert "moves (2):" in capsys.readouterr().out


def test_a_bad_rules_file_prints_file_and_line_and_fails(tmp_path, capsys):
    rules, cases = _files(tmp_path, rules=PROPOSED.replace("police", "polise"))
    assert cli.main(["rules", "try", rules, "--cases", cases]) == 2
    err = capsys.readouterr().err
    assert "rules.yaml line 5, column rule R3: unknown department 'polise'" in err


def test_a_bad_cases_file_names_its_lines(tmp_path, capsys):
    bad = CASES.replace("330302104001001,web", "999,web").replace(
        "2026-03-02T10:00:00+08:00", "soon"
    )
    rules, cases = _files(tmp_path, cases=bad)
    assert cli.main(["rules", "try", rules, "--cases", cases]) == 2
    err = capsys.readouterr().err
    assert "cases.csv line 3: Invalid isoformat string: 'soon'" in err
    assert "cases.csv line 4: unknown area '999'" in err


def test_rehearsing_the_database_cases_changes_nothing(gridflow, tmp_path, capsys):
    city = City(gridflow)
    city.clock(dt.datetime(2026, 3, 2, 23, 10, tzinfo=dt.timezone(dt.timedelta(hours=8))))
    noise = city.report(channel="hotline", category="event.noise", description="深夜太吵")
    with gridflow.engine.connect() as conn:
        before = (
            conn.execute(sa.select(assignments)).all(),
            conn.execute(sa.select(case_table)).all(),
        )
    rules, _ = _files(tmp_path)
    url = gridflow.engine.url.render_as_string(hide_password=False)
    argv = [
        "rules",
        "try",
        rules,
        "--from",
        "2026-03-02",
        "--to",
        "2026-03-02",
        "--database-url",
        url,
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"  {noise}: environment-330302001 -> police-330302001 (rule R3; was taxonomy)" in out
    with gridflow.engine.connect() as conn:
        after = (
            conn.execute(sa.select(assignments)).all(),
            conn.execute(sa.select(case_table)).all(),
        )
    assert after == before
