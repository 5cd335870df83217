"""The operator's command line: dead letters, jurisdiction import, and `gridflow run`."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess

import httpx
import pytest
import sqlalchemy as sa

from gridflow_app import bootstrap, cli
from gridflow_common.db import make_engine
from tests.conftest import GRIDFLOW, LUCHENG, free_port, wait_http


def _database_with_letters(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/ops.sqlite"
    engine = make_engine(url)
    bootstrap.upgrade_all(engine)
    with engine.begin() as conn:
        for event_id, state in (("e-1", "dead"), ("e-2", "retrying")):
            conn.execute(
                sa.text(
                    "INSERT INTO routing_failed (handler, event_id, message, attempts, last_error,"
                    " state, failed_at) VALUES ('on_case_registered', :e, '{}', 5, 'boom', :s, :t)"
                ),
                {"e": event_id, "s": state, "t": dt.datetime(2026, 3, 2, 1, 0)},
            )
    engine.dispose()
    return url


def _listed(capsys) -> list[tuple]:
    lines = capsys.readouterr().out.splitlines()
    return [(d["service"], d["id"], d["state"]) for d in map(json.loads, lines)]


def test_operator_lists_and_replays_a_dead_letter(tmp_path, capsys):
    url = _database_with_letters(tmp_path)
    assert cli.main(["dead-letters", "list", "--database-url", url]) == 0
    assert _listed(capsys) == [("routing", 1, "dead"), ("routing", 2, "retrying")]

    assert (
        cli.main(
            ["dead-letters", "replay", "--service", "routing", "--id", "1", "--database-url", url]
        )
        == 0
    )
    capsys.readouterr()
    cli.main(["dead-letters", "list", "--service", "routing", "--database-url", url])
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["state"], d["attempts"]) for d in again] == [("retrying", 0), ("retrying", 5)]
    # A letter that is not dead (any more) cannot be replayed twice.
    assert (
        cli.main(
            ["dead-letters", "replay", "--service", "routing", "--id", "1", "--database-url", url]
        )
        == 2
    )


def test_dead_letters_list_filters_by_state(tmp_path, capsys):
    url = _database_with_letters(tmp_path)
    assert cli.main(["dead-letters", "list", "--state", "dead", "--database-url", url]) == 0
    assert _listed(capsys) == [("routing", 1, "dead")]
    assert cli.main(["dead-letters", "list", "--state", "retrying", "--database-url", url]) == 0
    assert _listed(capsys) == [("routing", 2, "retrying")]


@pytest.mark.parametrize("action", ["replay", "list"])
def test_an_unknown_service_is_a_usage_error_naming_the_valid_ones(tmp_path, capsys, action):
    url = _database_with_letters(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        cli.main(
            ["dead-letters", action, "--service", "nosuch", "--id", "1", "--database-url", url]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "nosuch" in err
    assert all(name in err for name in ("intake", "routing", "departments", "sla", "notify"))
    assert "Traceback" not in err


def test_import_refuses_a_broken_folder_before_sending_anything(tmp_path, capsys):
    folder = tmp_path / "city"
    shutil.copytree(LUCHENG, folder)
    (folder / "units.csv").write_text(
        "code,name,kind,department_code,area_code\nx-1,某单位,spaceship,,330302\n", encoding="utf-8"
    )
    # No server listens on this port: a refused folder must not even try to reach it.
    assert cli.main(["import", str(folder), "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "units.csv" in err and "spaceship" in err


def test_one_port_name_for_every_command(monkeypatch):
    monkeypatch.delenv("GRIDFLOW_URL", raising=False)
    monkeypatch.setenv("GRIDFLOW_PORT", "18123")
    assert cli.default_port() == 18123
    assert cli.default_url() == "http://127.0.0.1:18123"
    monkeypatch.setenv("GRIDFLOW_URL", "http://gridflow.example:9000/")
    assert cli.default_url() == "http://gridflow.example:9000"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_removes_its_temporary_folder_when_stopped(tmp_path, sig):
    """`make run` is stopped with Ctrl-C (SIGINT) or a SIGTERM: its SQLite folder goes too."""
    port = free_port()
    token_file = tmp_path / "admin-token"
    env = {
        **os.environ,
        "TMPDIR": str(tmp_path),
        "GRIDFLOW_PORT": str(port),
        "GRIDFLOW_ADMIN_TOKEN_FILE": str(token_file),
    }
    env.pop("GRIDFLOW_CLOCK", None)
    proc = subprocess.Popen(
        [str(GRIDFLOW), "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        folders = list(tmp_path.glob("gridflow-*"))
        assert len(folders) == 1 and (folders[0] / "gridflow.sqlite").exists()
        admin = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
        assert httpx.get(
            f"http://127.0.0.1:{port}/api/v1/admin/jurisdiction", headers=admin
        ).is_success
        # The admin token file is the owner's alone.
        assert token_file.stat().st_mode & 0o777 == 0o600
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(tmp_path.glob("gridflow-*")) == []


def test_ensure_jurisdiction_loads_the_default_only_into_an_empty_database(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/empty.sqlite"
    bootstrap.upgrade_all(make_engine(url))
    assert cli.main(["ensure-jurisdiction", "--database-url", url]) == 0
    said = capsys.readouterr().out
    assert "loaded the default one, Lucheng" in said and "version 1" in said
    assert cli.main(["ensure-jurisdiction", "--database-url", url]) == 0
    assert "jurisdiction version 1 is in force; left as it is" in capsys.readouterr().out
