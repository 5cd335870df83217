"""filedrop's own promises, beyond the contract suite: what the office finds in its folder, what
a hostile delivery id cannot do, and what an unreadable status file does (nothing, loudly)."""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

import pytest
from gridflow_filedrop.adapter import MAX_STATUS_BYTES, FiledropAdapter
from gridflow_filedrop.testing import FiledropHarness

from gridflow_common.adapters import (
    AdapterConfig,
    Delivery,
    OpenDelivery,
    PushFailed,
    PushRefused,
    registry,
)


@pytest.fixture
def harness():
    made = FiledropHarness()
    yield made
    made.close()


@pytest.fixture
def adapter(harness):
    return FiledropAdapter(harness.config(), harness.context())


def delivery(delivery_id: str | None = None, **message) -> Delivery:
    delivery_id = uuid.uuid4().hex if delivery_id is None else delivery_id
    body = {"delivery_id": delivery_id, "case_id": "GF-1", "description": "井盖缺失", **message}
    return Delivery(
        delivery_id=delivery_id,
        kind="case",
        case_id="GF-1",
        assignment_id="GF-1-1",
        unit="office-filedrop",
        department=None,
        role="lead",
        message=body,
    )


def opened(d: Delivery, last_word: str | None = None) -> OpenDelivery:
    return OpenDelivery(d.delivery_id, d.case_id, d.assignment_id, d.unit, None, last_word)


def test_the_office_finds_one_readable_json_file_per_delivery_and_no_leftovers(adapter, harness):
    d = delivery()
    adapter.push(d)
    adapter.push(d)  # a repeat after a lost answer
    assert sorted(p.name for p in harness.folder.iterdir()) == [f"{d.delivery_id}.json", "status"]
    text = (harness.folder / f"{d.delivery_id}.json").read_text(encoding="utf-8")
    assert "井盖缺失" in text  # readable Chinese, not \\u escapes
    assert json.loads(text) == dict(d.message)


def test_a_repeat_replaces_the_file_whole(adapter, harness):
    d = delivery(colour="green")
    adapter.push(d)
    adapter.push(delivery(d.delivery_id, colour="yellow"))
    assert json.loads((harness.folder / f"{d.delivery_id}.json").read_text())["colour"] == "yellow"


@pytest.mark.parametrize("hostile", ["../escape", "/etc/passwd", ".hidden", "a/b", "", "x" * 300])
def test_a_delivery_id_that_is_no_plain_file_name_is_refused_and_writes_nothing(
    adapter, harness, hostile
):
    before = sorted(harness.root.rglob("*"))
    with pytest.raises(PushRefused, match="cannot be a file name"):
        adapter.push(delivery(hostile))
    assert sorted(harness.root.rglob("*")) == before


def test_a_configured_path_that_is_a_file_is_refused_not_retried(harness, tmp_path):
    not_a_folder = tmp_path / "drop.txt"
    not_a_folder.write_text("x")
    adapter = FiledropAdapter(
        AdapterConfig(code="o", adapter="filedrop", endpoint=str(not_a_folder)), harness.context()
    )
    with pytest.raises(PushRefused, match="is not a folder"):
        adapter.push(delivery())


def test_a_relative_endpoint_is_refused(harness):
    adapter = FiledropAdapter(
        AdapterConfig(code="o", adapter="filedrop", endpoint="drop"), harness.context()
    )
    with pytest.raises(PushRefused, match="not an absolute folder path"):
        adapter.push(delivery())


def test_a_missing_share_fails_for_a_retry_and_leaves_no_temporary_file(adapter, harness):
    harness.go_down()
    with pytest.raises(PushFailed, match="missing"):
        adapter.push(delivery())
    assert not adapter.health().ok
    harness.come_back()
    assert [p.name for p in harness.folder.iterdir()] == ["status"]


def test_a_write_that_fails_midway_removes_its_temporary_file(adapter, harness, monkeypatch):
    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(PushFailed, match="No space left on device"):
        adapter.push(delivery())
    assert [p.name for p in harness.folder.iterdir()] == ["status"]


def test_an_unknown_word_is_passed_on_as_said(adapter, harness):
    d = delivery()
    adapter.push(d)
    harness.set_status(d, None, "挂起待协调", "等燃气公司")
    [report] = adapter.poll_status([opened(d)])
    assert (report.word, report.note, report.delivery_id) == (
        "挂起待协调",
        "等燃气公司",
        d.delivery_id,
    )
    assert report.occurred_at is not None and report.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'["a list"]', b'{"note": "no status"}', b'{"status": 7}', b"\xff\xfe"],
)
def test_an_unreadable_status_file_is_logged_kept_and_reports_nothing(
    adapter, harness, caplog, content
):
    d = delivery()
    adapter.push(d)
    path = harness.folder / "status" / f"{d.delivery_id}.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="gridflow_filedrop.adapter"):
        assert adapter.poll_status([opened(d)]) == []
    assert "status file is not readable" in caplog.text
    assert path.read_bytes() == content  # kept for the office to mend


def test_an_oversized_status_file_reports_nothing(adapter, harness):
    d = delivery()
    adapter.push(d)
    big = {"status": "办结", "note": "x" * MAX_STATUS_BYTES}
    (harness.folder / "status" / f"{d.delivery_id}.json").write_text(json.dumps(big))
    assert adapter.poll_status([opened(d)]) == []


def test_polling_a_missing_share_fails_rather_than_saying_nothing_changed(adapter, harness):
    d = delivery()
    adapter.push(d)
    harness.go_down()
    with pytest.raises(PushFailed):
        adapter.poll_status([opened(d)])


def test_take_status_names_every_bad_field(adapter):
    with pytest.raises(ValueError) as caught:
        adapter.take_status({"case_id": "", "status": " ", "note": 3, "unit": ""})
    message = str(caught.value)
    for field in ("case_id:", "status:", "note:", "unit:"):
        assert field in message


def test_the_city_data_checks_filedrop_rows_through_the_registry(tmp_path):
    ok = AdapterConfig(code="o", adapter="filedrop", endpoint=str(tmp_path))
    assert registry.config_problems(ok) == []
    no_folder = AdapterConfig(code="o", adapter="filedrop")
    assert registry.config_problems(no_folder) == [
        ("endpoint", "adapter 'filedrop' needs an endpoint")
    ]
    bad = AdapterConfig(
        code="o",
        adapter="filedrop",
        endpoint=str(tmp_path),
        options={"status_folder": "../up", "fsync": "sometimes", "colour": 1},
    )
    problems = registry.config_problems(bad)
    assert {column for column, _ in problems} == {"options"}
    found = [message for _, message in problems]
    assert any(m.startswith("status_folder:") for m in found)
    assert any(m.startswith("fsync:") for m in found)
    assert any(m.startswith("colour:") for m in found)


def test_status_files_live_where_the_options_say(harness):
    (harness.folder / "answers").mkdir()
    adapter = FiledropAdapter(
        AdapterConfig(
            code="o",
            adapter="filedrop",
            endpoint=str(harness.folder),
            options={"status_folder": "answers", "fsync": False},
        ),
        harness.context(),
    )
    d = delivery()
    adapter.push(d)
    Path(harness.folder / "answers" / f"{d.delivery_id}.json").write_text('{"status": "已接收"}')
    [report] = adapter.poll_status([opened(d)])
    assert report.word == "已接收"
