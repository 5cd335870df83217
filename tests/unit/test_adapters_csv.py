"""adapters.csv, the city's data on how each department or unit is reached: read and checked
with the jurisdiction (file, line and column for every problem), and refused at install when
this process has no such adapter."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from gridflow_common.db import make_engine, platform_metadata
from gridflow_common.domain.jurisdiction import AdapterConfig
from gridflow_common.domain.jurisdiction_files import (
    JurisdictionError,
    load_folder,
    parse_jurisdiction,
)
from gridflow_common.jurisdictions import JurisdictionStore
from tests.unit.test_jurisdiction import LUCHENG, problems_of, small_city, where

HEADER = "code,adapter,endpoint,credential_ref,status_map,options\n"


def with_adapters(rows: str, header: str = HEADER) -> dict[str, str]:
    return {**small_city(), "adapters.csv": header + rows}


def test_a_folder_without_adapters_csv_serves_every_unit_over_amqp():
    j = parse_jurisdiction(small_city())
    assert j.adapters == ()
    assert j.adapter_for("roads-X01") == AdapterConfig(code="roads-X01", adapter="amqp")


def test_the_shipped_fixtures_still_load_with_their_codes():
    j = load_folder(LUCHENG)
    assert j.adapter_for("fire-330302").adapter == "amqp"
    assert len(j.units) > 40


def test_a_units_own_row_wins_over_its_departments_and_others_take_the_departments():
    j = parse_jurisdiction(
        with_adapters(
            "roads,webhook,https://roads.example/hook,env:ROADS_KEY,"
            '"受理:accepted;办结：resolved；退回:returned","{""timeout_seconds"": 5}"\n'
            "roads-X01,email,mailto:depot@roads.example,,,\n"
        )
    )
    bureau = j.adapter_for("roads-X")
    assert bureau.code == "roads" and bureau.adapter == "webhook"
    assert bureau.endpoint == "https://roads.example/hook"
    assert bureau.credential_ref == "env:ROADS_KEY"
    assert dict(bureau.status_map) == {
        "受理": "accepted",
        "办结": "resolved",
        "退回": "returned",
    }
    assert dict(bureau.options) == {"timeout_seconds": 5}
    assert j.adapter_for("roads-X01").adapter == "email"
    # A unit with no department and no row of its own: the default.
    assert j.adapter_for("cc-X").adapter == "amqp"
    assert j.adapter_lines == {"roads": 2, "roads-X01": 3}


def test_only_code_and_adapter_columns_are_required():
    j = parse_jurisdiction(with_adapters("roads-X01,inbox\n", header="code,adapter\n"))
    assert j.adapter_for("roads-X01").adapter == "inbox"


def test_every_bad_cell_is_reported_on_its_line_and_column():
    problems = problems_of(
        with_adapters(
            "nowhere,webhook,https://x.example,,,\n"  # 2: unknown code
            "roads,,https://x.example,,,\n"  # 3: no adapter
            "parks,webhook,https://x.example,s3cr3t-value,,\n"  # 4: a secret pasted in
            'roads-X01,webhook,https://x.example,,"ok:accepted;bad:finished",\n'  # 5: status
            'roads-X,webhook,https://x.example,,"a:accepted;a:resolved",\n'  # 6: word twice
            "sc-X01,webhook,https://x.example,,nocolon,\n"  # 7: not word:status
            "off-X01A,webhook,https://x.example,,,[1]\n"  # 8: options not an object
            "cc-X,webhook,https://x.example,,,{oops\n"  # 9: options not JSON
            "roads-X01,inbox,,,,\n"  # 10: code given twice
            "parks,bad name!,,,,\n"  # 11: not an adapter name; parks again
        )
    )
    assert where(problems) == {
        ("adapters.csv", 2, "code"),
        ("adapters.csv", 3, "adapter"),
        ("adapters.csv", 4, "credential_ref"),
        ("adapters.csv", 5, "status_map"),
        ("adapters.csv", 6, "status_map"),
        ("adapters.csv", 7, "status_map"),
        ("adapters.csv", 8, "options"),
        ("adapters.csv", 9, "options"),
        ("adapters.csv", 10, "code"),
        ("adapters.csv", 11, "adapter"),
        ("adapters.csv", 11, "code"),
    }
    text = "\n".join(str(p) for p in problems)
    assert "s3cr3t-value" not in text
    assert "unknown status 'finished'" in text
    assert "'a' is mapped twice" in text


def test_a_status_the_vocabulary_gains_is_accepted_when_read(monkeypatch):
    from gridflow_common.domain import vocabulary

    files = with_adapters('roads,webhook,https://x.example,,"暂停:paused",\n')
    assert ("adapters.csv", 2, "status_map") in where(problems_of(files))
    monkeypatch.setattr(vocabulary, "UPDATE_STATUSES", (*vocabulary.UPDATE_STATUSES, "paused"))
    assert dict(parse_jurisdiction(files).adapter_for("roads-X").status_map) == {"暂停": "paused"}


@pytest.mark.parametrize("bad", ["roads.x", "roads*", "road#s", "ro ads"])
def test_department_and_unit_codes_that_break_routing_keys_are_refused(bad):
    files = small_city()
    files["departments.csv"] = files["departments.csv"].replace("parks,", f"{bad},")
    files["units.csv"] = files["units.csv"].replace("roads-X01,", f"{bad}-X01,")
    assert {("departments.csv", 3, "code"), ("units.csv", 5, "code")} <= where(problems_of(files))


@pytest.fixture()
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/j.sqlite")
    platform_metadata.create_all(engine)
    yield JurisdictionStore(engine)
    engine.dispose()


def test_an_adapter_not_installed_is_refused_at_install_and_the_old_version_stays(store):
    first = store.install(small_city())
    with pytest.raises(JurisdictionError) as caught:
        store.install(
            with_adapters(
                "roads,carrier_pigeon,,,,\n"
                'parks,amqp,,,,"{""colour"": ""blue""}"\n'  # amqp takes no options
            )
        )
    found = {(p.file, p.line, p.column): p.message for p in caught.value.problems}
    assert "no adapter 'carrier_pigeon' is installed" in found[("adapters.csv", 2, "adapter")]
    assert "colour" in found[("adapters.csv", 3, "options")]
    assert store.active_version() == first


def test_a_stored_version_is_read_back_without_the_installed_adapter_check(store, monkeypatch):
    version = store.install(with_adapters("roads,amqp,,,,\n"))
    from gridflow_common.adapters import registry

    # Later the process has other adapters: reading the stored version must still work.
    monkeypatch.setattr(registry, "config_problems", lambda config: [("adapter", "gone")])
    fresh = JurisdictionStore(store._engine)
    assert fresh.get(version).adapter_for("roads-X").adapter == "amqp"
    with pytest.raises(JurisdictionError):
        fresh.install(with_adapters("roads,amqp,,,,\n"))
    with store._engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from gridflow_jurisdictions")).scalar() == 1


def test_the_admin_api_refuses_an_adapter_not_installed_naming_the_cell(gridflow):
    from tests.conftest import lucheng_files
    from tests.unit.test_api_http import SignedApi, _answer, _json_request

    api = SignedApi(gridflow)
    before = _answer(api, _json_request("GET", "/api/v1/admin/jurisdiction", b""))[1]["version"]
    files = {**lucheng_files(), "adapters.csv": "code,adapter\nwater,inbox\nfire,carrier_pigeon\n"}
    status, answer = _answer(
        api, _json_request("PUT", "/api/v1/admin/jurisdiction", {"files": files})
    )
    assert status == 400, answer
    (problem,) = answer["errors"]
    assert (problem["file"], problem["line"], problem["column"]) == ("adapters.csv", 3, "adapter")
    assert "carrier_pigeon" in problem["message"]
    after = _answer(api, _json_request("GET", "/api/v1/admin/jurisdiction", b""))[1]["version"]
    assert after == before


def test_gridflow_import_shows_the_servers_problems_with_adapters_csv(
    tmp_path, tmp_path_factory, monkeypatch, capsys
):
    """The CLI checks the folder locally, but only the server knows which adapters it has."""
    import shutil

    from gridflow_app import cli
    from gridflow_app.folders import ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE_ENV
    from tests.unit.running_server import running_gridflow

    folder = tmp_path / "city"
    shutil.copytree(LUCHENG, folder)
    (folder / "adapters.csv").write_text(
        "code,adapter,endpoint\nfire,carrier_pigeon,loft://roof\n", encoding="utf-8"
    )
    with running_gridflow(tmp_path_factory.mktemp("import")) as server:
        monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
        monkeypatch.setenv(ADMIN_TOKEN_FILE_ENV, str(server.token_file))
        code = cli.main(["import", str(folder), "--url", server.url])
    said = capsys.readouterr()
    assert code == 2
    assert "adapters.csv line 2, column adapter: no adapter 'carrier_pigeon' is installed" in (
        said.err
    )


def test_an_email_unit_whose_endpoint_names_no_address_is_refused_at_install(store):
    first = store.install(small_city())
    with pytest.raises(JurisdictionError) as caught:
        store.install(
            with_adapters(
                "roads,email,mailto:road-office.example,,,\n"
                "parks,email,mailto:parks@x.example,,,\n"  # good: not named among the problems
            )
        )
    found = {(p.file, p.line, p.column): p.message for p in caught.value.problems}
    assert list(found) == [("adapters.csv", 2, "endpoint")]
    assert "email" in found[("adapters.csv", 2, "endpoint")]
    assert store.active_version() == first
    assert store.install(with_adapters("parks,email,mailto:parks@x.example,,,\n")) > first
