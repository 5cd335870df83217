"""The operator's command line: dead letters and jurisdiction import."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import sqlalchemy as sa

from gridflow_common import cli, migrate
from gridflow_common.db import make_engine
from tests.conftest import LUCHENG


def _database_with_a_dead_letter(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/ops.sqlite"
    engine = make_engine(url)
    migrate.upgrade_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO routing_failed (handler, event_id, message, attempts, last_error, state,"
            " failed_at) VALUES ('on_case_registered', 'e-1', '{}', 5, 'boom', 'dead', :t)"),
            {"t": dt.datetime(2026, 3, 2, 1, 0)})
    engine.dispose()
    return url


def test_operator_lists_and_replays_a_dead_letter(tmp_path, capsys):
    url = _database_with_a_dead_letter(tmp_path)
    assert cli.main(["dead-letters", "list", "--database-url", url]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["service"], d["id"], d["state"], d["attempts"]) for d in listed] == [
        ("routing", 1, "dead", 5)]

    assert cli.main(["dead-letters", "replay", "--service", "routing", "--id", "1",
                     "--database-url", url]) == 0
    capsys.readouterr()
    cli.main(["dead-letters", "list", "--service", "routing", "--database-url", url])
    again = json.loads(capsys.readouterr().out)
    assert (again["state"], again["attempts"]) == ("retrying", 0)
    # A letter that is not dead (any more) cannot be replayed twice.
    assert cli.main(["dead-letters", "replay", "--service", "routing", "--id", "1",
                     "--database-url", url]) == 2


def test_import_refuses_a_broken_folder_before_sending_anything(tmp_path, capsys):
    folder = tmp_path / "city"
    shutil.copytree(LUCHENG, folder)
    (folder / "units.csv").write_text("code,name,kind,department_code,area_code\n"
                                      "x-1,某单位,spaceship,,330302\n", encoding="utf-8")
    # No server listens on this port: a refused folder must not even try to reach it.
    assert cli.main(["import", str(folder), "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "units.csv" in err and "spaceship" in err
