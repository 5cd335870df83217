"""`gridflow import-reports FILE` against `gridflow run` over real HTTP: CSV and Excel rows go
through the batch API (one validation: the API's), a progress bar is drawn on stderr, each row's
result is written beside the file, and importing the same file again changes nothing.

The same server also takes a batch and a photo as a phone sends them, over real HTTP.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess

import httpx
import pytest
import sqlalchemy as sa
from openpyxl import Workbook
from PIL import Image

from gridflow_app.folders import ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE_ENV
from gridflow_common.domain import intake_batch as ib
from gridflow_intake import models
from tests.conftest import GRIDFLOW
from tests.unit.running_server import running_gridflow

HEADER = ["external_id", "description", "category", "lat", "lon", "grid_code", "observed_at"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_gridflow(tmp_path_factory.mktemp("import-reports")) as running:
        yield running


def _import(server, path, *extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ADMIN_TOKEN_ENV}
    env.update({ADMIN_TOKEN_FILE_ENV: str(server.token_file), "GRIDFLOW_URL": server.url})
    return subprocess.run(
        [str(GRIDFLOW), "import-reports", str(path), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _results(path) -> list[dict]:
    with open(f"{path}.results.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _reports(server) -> int:
    engine = server.engine()
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(models.reports)).scalar_one()
    finally:
        engine.dispose()


def _now(server) -> dt.datetime:
    answer = httpx.get(f"{server.url}/api/v1/admin/clock", headers=server.admin, timeout=30)
    return dt.datetime.fromisoformat(answer.json()["now"])


def test_a_csv_file_is_imported_row_by_row_and_again_changes_nothing(server, tmp_path):
    seen = (_now(server) - dt.timedelta(hours=3)).isoformat()
    rows = [
        HEADER,
        ["", "一户民房内存放大量医疗废弃物", "event.medical_waste", "28.05", "120.635", "", seen],
        ["", "井盖缺失", "", "north", "120.6", "", ""],  # lat is not a number
        ["", "", "", "28.05", "120.635", "", ""],  # no description
        ["", "", "", "", "", "", ""],  # blank: skipped
        ["hotline-88", "路灯不亮", "", "", "", "330302104001001", ""],
        ["", "垃圾堆积", "", "28.05", "120.635", "99999", ""],  # two locations
    ]
    path = tmp_path / "reports.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)
    before = _reports(server)
    done = _import(server, path)
    assert done.returncode == 1, done.stderr  # some rows refused
    assert "6/6 rows" not in done.stderr  # the blank row is not counted
    assert "5/5 rows 100%" in done.stderr
    results = _results(path)
    assert [r["row"] for r in results] == ["2", "3", "4", "6", "7"]
    assert [r["outcome"] for r in results] == [
        "registered",
        "refused",
        "refused",
        "registered",
        "refused",
    ]
    assert results[0]["case_id"].startswith("GF-")
    assert "location.lat" in results[1]["errors"]
    assert "description" in results[2]["errors"]
    assert "location" in results[4]["errors"]
    assert _reports(server) == before + 2

    again = _import(server, path)
    assert again.returncode == 1
    assert [r["outcome"] for r in _results(path)] == [
        "resubmission",
        "refused",
        "refused",
        "resubmission",
        "refused",
    ]
    assert [r["case_id"] for r in _results(path) if r["case_id"]] == [
        results[0]["case_id"],
        results[3]["case_id"],
    ]
    assert _reports(server) == before + 2
    # The observed instant travelled with the row.
    case = httpx.get(
        f"{server.url}/api/v1/cases/{results[0]['case_id']}", headers=server.admin, timeout=30
    ).json()
    assert dt.datetime.fromisoformat(case["observed_at"]) == dt.datetime.fromisoformat(seen)
    assert case["reports"][0]["channel"] == "import"


def test_an_excel_file_is_imported_with_its_numbers_and_dates(server, tmp_path):
    now = _now(server)
    book = Workbook()
    sheet = book.active
    sheet.append(["description", "lat", "lon", "observed_at", "reporter_name"])
    # Excel keeps a date-time without a zone: read in the city's (Asia/Shanghai).
    local_seen = (now - dt.timedelta(hours=1)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    sheet.append(["小区门口垃圾堆放", 28.051, 120.6351, local_seen.replace(tzinfo=None), "王"])
    sheet.append(["占道经营", 95, 120.6, None, None])
    path = tmp_path / "reports.xlsx"
    book.save(path)
    done = _import(server, path)
    assert done.returncode == 1, done.stderr
    first, second = _results(path)
    assert first["outcome"] in ("registered", "joined")
    assert second["outcome"] == "refused" and "location.lat" in second["errors"]
    case = httpx.get(
        f"{server.url}/api/v1/cases/{first['case_id']}", headers=server.admin, timeout=30
    ).json()
    observed = [r["observed_at"] for r in case["reports"] if r["observed_at"]]
    assert dt.datetime.fromisoformat(observed[-1]) == local_seen
    assert _import(server, path).returncode == 1
    assert [r["outcome"] for r in _results(path)] == ["resubmission", "refused"]


def test_a_file_with_an_unknown_column_is_refused_whole(server, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("description,latitude\n井盖缺失,28.05\n", encoding="utf-8")
    done = _import(server, path)
    assert done.returncode == 2
    assert "unknown columns 'latitude'" in done.stderr


def test_a_file_that_is_not_a_workbook_is_refused(server, tmp_path):
    path = tmp_path / "fake.xlsx"
    path.write_bytes(b"\x00\x01 not a zip")
    done = _import(server, path)
    assert done.returncode == 2
    assert "not an .xlsx workbook" in done.stderr or "cannot be read" in done.stderr


def test_an_import_row_without_an_id_gets_one_from_what_it_says():
    row = ib.ImportRow(5, {"description": "井盖缺失", "grid_code": "330302104001001"})
    same_elsewhere = ib.ImportRow(9, dict(row.cells))
    assert ib.import_external_id(row) == ib.import_external_id(same_elsewhere)
    assert ib.import_external_id(row).startswith("import-")
    changed = ib.ImportRow(5, {**row.cells, "description": "井盖破损"})
    assert ib.import_external_id(changed) != ib.import_external_id(row)
    given = ib.ImportRow(5, {**row.cells, "external_id": "dept-42"})
    assert ib.import_external_id(given) == "dept-42"
    assert ib.import_report(
        ib.ImportRow(2, {"description": "x", "lat": "nan", "lon": "1"}), "import"
    )["location"] == {"lat": "nan", "lon": 1.0}


def test_a_phone_sends_a_photo_and_a_batch_over_real_http(server):
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(buf, "JPEG")
    with server.client() as client:
        no_type = client.post("/api/v1/photos", content=buf.getvalue(), headers=server.admin)
        assert no_type.status_code == 415
        assert "no Content-Type" in no_type.json()["errors"]["content_type"][0]
        photo = client.post(
            "/api/v1/photos",
            content=buf.getvalue(),
            headers={**server.admin, "Content-Type": "image/jpeg"},
        )
        assert photo.status_code == 201, photo.text
        photo_id = photo.json()["photo_id"]
        item = {
            "channel": "grid_app",
            "external_id": "http-phone-1",
            "description": "河道漂浮垃圾",
            "location": {"grid_code": "330302104001001"},
            "photos": [photo_id],
        }
        batch = client.post(
            "/api/v1/reports/batch",
            json={"items": [item, {**item, "external_id": "http-phone-2", "description": ""}]},
            headers=server.admin,
        )
        assert batch.status_code == 200, batch.text
        first, second = batch.json()["results"]
        assert first["outcome"] == "registered"
        assert list(second["errors"]) == ["items.1.description"]
        assert "must not be empty" in second["errors"]["items.1.description"]
        case = client.get(f"/api/v1/cases/{first['case_id']}", headers=server.admin).json()
        assert [p["photo_id"] for p in case["photos"]] == [photo_id]
        image = client.get(case["photos"][0]["url"], headers=server.admin)
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/jpeg"
        assert image.content == buf.getvalue()
        big = client.post(
            "/api/v1/reports/batch",
            json={"items": [item] * (ib.MAX_BATCH_ITEMS + 1)},
            headers=server.admin,
        )
        assert big.status_code == 413
        assert "items" in big.json()["errors"]
