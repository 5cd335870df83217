"""`gridflow users ...` and `gridflow keys ...` against a running `gridflow run`, through the admin
API, with the admin token where `gridflow run` wrote it."""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import httpx
import pytest

from gridflow_app import cli
from gridflow_app.folders import ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE_ENV
from tests.conftest import GRIDFLOW, free_port
from tests.http_samples import report
from tests.unit.running_server import RunningGridflow, running_gridflow

KEY = re.compile(r"^gfk_[A-Za-z0-9_-]{43}$")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_gridflow(tmp_path_factory.mktemp("cli-access")) as running:
        yield running


@pytest.fixture
def gridflow_cli(server, monkeypatch, capsys):
    """`gridflow ARGS...` in process, with the running server's admin token file: (exit code,
    stdout lines, stderr)."""
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    monkeypatch.setenv(ADMIN_TOKEN_FILE_ENV, str(server.token_file))

    def run(*args: str) -> tuple[int, list[str], str]:
        code = cli.main([*args, "--url", server.url])
        said = capsys.readouterr()
        return code, said.out.splitlines(), said.err

    return run


def _name() -> str:
    return f"u{uuid.uuid4().hex[:10]}"


def _report(server: RunningGridflow, key: str, channel: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/reports", json=report(channel=channel), headers={"X-Api-Key": key}
    )


def test_keys_create_prints_the_key_alone_last_and_it_reports_on_its_channel_only(
    server, gridflow_cli
):
    code, out, err = gridflow_cli(
        "keys",
        "create",
        "--channel",
        "hotline",
        "--label",
        "12345 hotline",
        "--rate-limit",
        "600/min",
    )
    assert code == 0, err
    key = out[-1]
    assert KEY.match(key), out
    assert all(key not in line for line in out[:-1])
    assert _report(server, key, "hotline").status_code == 201
    other = _report(server, key, "wechat")
    assert other.status_code == 403 and "channel" in other.json()["errors"]

    code, out, _ = gridflow_cli("keys", "list")
    listed = [line for line in out if '"12345 hotline"' in line]
    assert code == 0 and len(listed) == 1 and key not in "\n".join(out)
    credential_id = re.search(r'"credential_id": "([^"]+)"', listed[0]).group(1)
    assert '"rate_limit": "600/min"' in listed[0]

    code, out, _ = gridflow_cli("keys", "revoke", credential_id)
    assert code == 0 and out == [f"revoked {credential_id}"]
    assert _report(server, key, "hotline").status_code == 401
    code, _, err = gridflow_cli("keys", "revoke", credential_id)
    assert code == 2 and "credential_id" in err


def test_keys_create_prints_the_key_last_when_run_as_a_command(server):
    """The same as a person runs it: the key alone on the real stdout's last line."""
    env = {k: v for k, v in os.environ.items() if k != ADMIN_TOKEN_ENV}
    env[ADMIN_TOKEN_FILE_ENV] = str(server.token_file)
    done = subprocess.run(
        [str(GRIDFLOW), "keys", "create", "--holder", "environment", "--url", server.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.rstrip("\n").splitlines()[-1]
    assert re.match(r"^gfd_[A-Za-z0-9_-]{43}$", token)
    me = httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["scope"] == "environment"


@pytest.mark.parametrize(
    "args,field",
    [
        (["--holder", "no-such-unit"], "holder"),
        (["--channel", "hotline", "--rate-limit", "lots"], "rate_limit"),
        (["--channel", "hotline", "--expires-in-days", "0"], "expires_in_days"),
    ],
)
def test_a_refused_key_exits_2_printing_the_apis_field_errors(gridflow_cli, args, field):
    code, out, err = gridflow_cli("keys", "create", *args)
    assert code == 2 and out == []
    assert f"  {field}: " in err and "Traceback" not in err


def test_users_create_list_and_disable(server, gridflow_cli):
    username = _name()
    code, out, err = gridflow_cli(
        "users",
        "create",
        username,
        "--role",
        "department",
        "--scope",
        "environment",
        "--name",
        "环保 王",
    )
    assert code == 0, err
    link = out[-1]
    assert link.startswith(f"{server.url}/api/v1/session/link?token=gfl_"), out
    assert any(username in line and "环保 王" in line for line in out[:-1])
    with httpx.Client(base_url=server.url) as browser:
        assert browser.get(link).status_code == 303
        me = browser.get("/api/v1/me").json()
        assert (me["name"], me["role"], me["scope"]) == (username, "department", "environment")

        code, out, _ = gridflow_cli("users", "list")
        assert code == 0 and sum(f'"username": "{username}"' in line for line in out) == 1

        code, out, _ = gridflow_cli("users", "disable", username)
        assert code == 0 and username in out[0]
        assert browser.get("/api/v1/me").status_code == 401
    code, out, _ = gridflow_cli("users", "list")
    mine = [line for line in out if f'"username": "{username}"' in line]
    assert '"disabled_at": null' not in mine[0]

    code, _, err = gridflow_cli("users", "create", username, "--role", "admin")
    assert code == 2 and "username" in err and "taken" in err
    code, _, err = gridflow_cli("users", "disable", "nobody-" + username)
    assert code == 2 and "username" in err


def test_users_import_creates_every_good_row_and_names_the_bad_ones_line(
    server, gridflow_cli, tmp_path
):
    names = [_name() for _ in range(4)]
    sheet = tmp_path / "people.csv"
    sheet.write_text(
        "\ufeffusername,role,scope,display_name\n"
        f"{names[0]},grid_worker,330302001001001,吴辉\n"
        f"{names[1]},astronaut,,某人\n"
        "\n"
        f"{names[2]},command_center,,\n"
        f"{names[3]},street,no-such-area,某街道\n",
        encoding="utf-8",
    )
    code, out, err = gridflow_cli("users", "import", str(sheet))
    assert code == 2
    assert f"{sheet}:3: refused (400):" in err and "role" in err
    assert f"{sheet}:6: refused (" in err and "scope" in err
    assert out[-1] == f"2 users created, 2 rows refused ({sheet})"
    links = [line.split(": ", 1)[1] for line in out if "sign-in link" in line]
    assert len(links) == 2
    listed = httpx.get(f"{server.url}/api/v1/admin/users", headers=server.admin).json()["users"]
    made = {u["username"]: (u["role"], u["scope"], u["display_name"]) for u in listed}
    assert made.get(names[0]) == ("grid_worker", "330302001001001", "吴辉")
    assert made.get(names[2]) == ("command_center", None, names[2])
    assert names[1] not in made and names[3] not in made


def test_users_import_refuses_a_file_with_unknown_columns_before_sending_anything(
    gridflow_cli, tmp_path
):
    sheet = tmp_path / "people.csv"
    sheet.write_text("username,role,password\nbob,admin,hunter2hunter2\n", encoding="utf-8")
    code, out, err = gridflow_cli("users", "import", str(sheet))
    assert code == 2 and "password" in err and "unknown" in err and out == []


def test_without_an_admin_token_the_cli_says_where_it_looked(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "nowhere" / "admin-token"
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    monkeypatch.setenv(ADMIN_TOKEN_FILE_ENV, str(missing))
    assert cli.main(["keys", "list", "--url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and ADMIN_TOKEN_ENV in err and "Traceback" not in err


def test_an_unreachable_server_exits_2_saying_so(monkeypatch, capsys):
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "gft_" + "x" * 43)
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["users", "list", "--url", url]) == 2
    assert f"cannot reach Gridflow at {url}" in capsys.readouterr().err


def test_a_token_that_is_not_an_admins_is_refused_by_the_server(server, monkeypatch, capsys):
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "gft_" + "x" * 43)
    assert cli.main(["users", "list", "--url", server.url]) == 2
    err = capsys.readouterr().err
    assert "refused (401" in err and "authorization" in err
