"""Residents hear back (回访告知) on the embedded default: a resident who left a phone gets the
registered, dispatched and resolved SMS (and the invitation to evaluate) at a real HTTP SMS
gateway on loopback, each once; and the pieces under it: templates, channel loading, quiet
hours and backoff.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gridflow_common import notify_channels as nc
from gridflow_common import notify_templates
from gridflow_common.domain import notify_plan as np
from gridflow_common.domain import vocabulary as v
from gridflow_notify import delivery
from tests.unit.test_orders import SQUAD, City, _pump

PHONE = "13912345678"
CST = dt.timezone(dt.timedelta(hours=8))


class Gateway:
    """An HTTP SMS gateway on loopback: keeps every POST's JSON and headers."""

    def __init__(self, fail_first: int = 0):
        self.received: list[tuple[dict, dict]] = []
        self.fail_first = fail_first
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if gateway.fail_first > 0:
                    gateway.fail_first -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                gateway.received.append((json.loads(body), dict(self.headers)))
                answer = json.dumps({"id": f"sms-{len(gateway.received)}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/send"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    g = Gateway()
    yield g
    g.close()


def _to(gateway: Gateway, phone: str) -> list[str]:
    return [body["text"] for body, _ in gateway.received if body["to"] == phone]


def test_a_resident_with_a_phone_hears_registered_dispatched_and_resolved_by_sms(
    gridflow, gateway, monkeypatch
):
    monkeypatch.setenv("GATEWAY_KEY", "k-secret-123")
    monkeypatch.setenv(
        delivery.CHANNELS_ENV,
        json.dumps({"sms": {"url": gateway.url, "credential_ref": "env:GATEWAY_KEY"}}),
    )
    notify = gridflow.runtimes["notify"]
    city = City(gridflow)
    case_id = city.report(reporter={"name": "王女士", "phone": PHONE})
    delivery.run_deliveries(notify)
    texts = _to(gateway, PHONE)
    assert len(texts) == 2, texts
    registered = next(t for t in texts if "已立案" in t)
    assert case_id in registered
    link = re.search(r"https?://\S+/api/v1/progress/(gfr_\S+)", registered)
    assert link, registered
    # The link in the message opens the case's progress page.
    page = city.call("GET", f"/api/v1/progress/{link.group(1)}")
    assert page.status == 200 and page.body["case_id"] == case_id
    assert any("已交由" in t for t in texts)
    city.update(case_id, SQUAD, v.RESOLVED, note="已清运")
    assert (
        city.call("POST", f"/api/v1/cases/{case_id}/verification", {"passed": True}).status == 200
    )
    _pump(gridflow)
    delivery.run_deliveries(notify)
    delivery.run_deliveries(notify)  # nothing more: each message once
    texts = _to(gateway, PHONE)
    assert len(texts) == 4, texts
    # Sent side by side: either may arrive first.
    assert any("已办结" in t for t in texts[2:]) and any("评价" in t for t in texts[2:])
    # The credential went by reference; the gateway got it, the data never held it.
    assert all(h["Authorization"] == "Bearer k-secret-123" for _, h in gateway.received)
    # The delivery log shows on the case's notifications, contact masked.
    listed = city.call("GET", f"/api/v1/cases/{case_id}/notifications", who="command").body
    resident = [n for n in listed["items"] if n["kind"].startswith("resident_")]
    assert {n["kind"] for n in resident} == set(np.RESIDENT_KINDS)
    assert all(n["status"] == "sent" and n["attempts"][-1]["outcome"] == "sent" for n in resident)
    assert PHONE not in json.dumps(listed)


def test_a_gateway_that_fails_is_tried_again_after_a_backoff_on_operational_time(
    gridflow, monkeypatch
):
    gateway = Gateway(fail_first=1)
    try:
        monkeypatch.setenv(delivery.CHANNELS_ENV, json.dumps({"sms": {"url": gateway.url}}))
        notify = gridflow.runtimes["notify"]
        real = [dt.datetime.now(dt.timezone.utc)]
        notify.operational_now = lambda: real[0]
        city = City(gridflow)
        case_id = city.report(reporter={"name": "王女士", "phone": PHONE})
        delivery.run_deliveries(notify)
        sent = len(gateway.received)  # every message but the one that met the 503
        delivery.run_deliveries(notify)
        assert len(gateway.received) == sent  # its backoff has not run out
        real[0] += dt.timedelta(seconds=np.DEFAULT_BACKOFF_BASE + 1)
        delivery.run_deliveries(notify)
        assert len(gateway.received) == sent + 1
        listed = city.call("GET", f"/api/v1/cases/{case_id}/notifications", who="command").body
        outcomes = [[a["outcome"] for a in n["attempts"]] for n in listed["items"] if n["attempts"]]
        assert ["retry", "sent"] in outcomes
    finally:
        gateway.close()


def test_every_template_renders_in_chinese_with_no_english_word():
    for kind in np.KINDS:
        subject, text = notify_templates.render(kind, notify_templates.SAMPLE_CONTEXT[kind])
        stripped = re.sub(r"https?://\S+|GF-\d{8}-[A-Z0-9]+", "", subject + text)
        assert not re.search(r"[A-Za-z]{2,}", stripped), (kind, text)
        assert re.search(r"[\u4e00-\u9fff]", text), kind


def test_a_template_that_cannot_render_is_refused_at_import_with_its_line():
    import dataclasses

    from gridflow_common.domain.jurisdiction_files import JurisdictionError, load_folder
    from gridflow_common.jurisdictions import check_templates

    j = load_folder("libs/common/gridflow_common/fixtures/lucheng")
    bad = np.NotifyPlan(
        templates={"registered": "案件 {{ case_id }} {{ no_such_thing }}", "hotspot": "{% if %}"},
        template_lines={"registered": 2, "hotspot": 3},
    )
    with pytest.raises(JurisdictionError) as refused:
        check_templates(dataclasses.replace(j, notify_plan=bad))
    found = {(p.file, p.line) for p in refused.value.problems}
    assert found == {("notify_templates.csv", 2), ("notify_templates.csv", 3)}
    assert "no_such_thing" in str(refused.value)


class NotAChannel:
    pass


class NoSend(nc.NotifyChannel):
    pass


def test_channels_are_loaded_by_name_and_a_bad_one_is_refused_loudly():
    assert nc.load("sms").__name__ == "SmsChannel"
    assert set(nc.installed()) >= {"email", "sms", "wecom_robot", "webhook", "wechat_official"}
    with pytest.raises(nc.ChannelContractError, match="no notify channel 'fax'"):
        nc.load("fax")
    with pytest.raises(nc.ChannelContractError, match="does not subclass"):
        nc.check_class("x", NotAChannel)
    with pytest.raises(nc.ChannelContractError, match="does not implement send"):
        nc.check_class("x", NoSend)


def test_quiet_hours_hold_what_is_not_urgent_until_the_morning():
    quiet = np.parse_quiet_hours("22:00-07:00")
    night = dt.datetime(2026, 11, 26, 23, 30, tzinfo=CST)
    assert np.hold_until(night, quiet, urgent=False) == dt.datetime(2026, 11, 27, 7, 0, tzinfo=CST)
    early = dt.datetime(2026, 11, 27, 5, 0, tzinfo=CST)
    assert np.hold_until(early, quiet, urgent=False) == dt.datetime(2026, 11, 27, 7, 0, tzinfo=CST)
    assert np.hold_until(night, quiet, urgent=True) is None
    assert np.hold_until(dt.datetime(2026, 11, 26, 12, 0, tzinfo=CST), quiet, False) is None
    assert np.NotifyPlan().is_urgent(np.WARNING_RED, None)
    assert not np.NotifyPlan().is_urgent(np.WARNING_YELLOW, None)
    with pytest.raises(ValueError):
        np.parse_quiet_hours("25:00-07:00")


def test_backoff_doubles_up_to_its_cap_and_respects_retry_after():
    assert [np.backoff(n, 10, 60) for n in range(1, 6)] == [10, 20, 40, 60, 60]
    assert np.backoff(1, 10, 60, retry_after=30) == 30


def test_notify_csv_names_each_bad_cell_with_file_and_line():
    text = (
        "person,channels,kinds\nP00001,wecom_robot;sms,\nP99999,sms,\nP00002,,\nP00003,sms,nope\n"
    )
    rules, problems = np.parse_rules(text, ["P00001", "P00002", "P00003"])
    assert rules[0].channels == ("wecom_robot", "sms")
    assert [(p.line, p.column) for p in problems] == [(3, "person"), (4, "channels"), (5, "kinds")]
    plan = np.NotifyPlan(rules=rules)
    assert plan.channels_for("P00001", np.DISPATCHED, "1", None) == ("wecom_robot", "sms")
    assert plan.channels_for("P00002", np.DISPATCHED, None, "a@b.cn") == ("email",)
