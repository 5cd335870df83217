"""Residents hear back on the real topology: five ``nameko run`` processes behind nginx, notify
configured with an SMS gateway (a real HTTP server on loopback). A resident's report is
registered and dispatched; notify asks intake for the reporter through the
``reporter_contacts`` RPC (process to process) and the resident gets both SMS, once each, the
first with a progress link that opens through the proxy.
"""

from __future__ import annotations

import json
import time

import pytest

from gridflow_notify import delivery
from tests.conftest import lucheng_files
from tests.e2e.conftest import running_topology
from tests.support.notify_receivers import HttpReceiver, Reply

pytestmark = pytest.mark.e2e

PHONE = "13955550123"


def test_a_resident_hears_registered_and_dispatched_by_sms_through_five_processes(
    amqp_uri, database_url, tmp_path
):
    gateway = HttpReceiver(Reply(200, {"id": "accepted"}))
    env = {delivery.CHANNELS_ENV: json.dumps({"sms": {"url": gateway.url("/send")}})}
    try:
        with running_topology(amqp_uri, database_url, tmp_path, extra_env=env) as topo:
            # Whatever the hour the test runs at: no quiet hours.
            files = {**lucheng_files(), "settings.csv": "key,value\nquiet_hours,none\n"}
            status, body = topo.call("PUT", "/api/v1/admin/jurisdiction", {"files": files})
            assert status == 200, body
            answer = topo.http.post(
                "/api/v1/reports",
                json={
                    "channel": "web",
                    "description": "青园社区门口空地上堆了很多装修垃圾和旧家具",
                    "category": "event.junk_pile",
                    "location": {"lat": 27.995, "lon": 120.556},
                    "reporter": {"name": "钱女士", "phone": PHONE},
                },
            )
            assert answer.status_code == 201, answer.text
            case_id = answer.json()["case_id"]

            def texts() -> list[str]:
                return [p.json()["text"] for p in gateway.taken() if p.json()["to"] == PHONE]

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(texts()) < 2:
                time.sleep(0.2)  # bounded: by the deadline; notify's tick runs once a second
            got = texts()
            assert len(got) == 2, (got, topo.logs())
            registered = next(t for t in got if "已立案" in t)
            assert case_id in registered and "堆物堆料" in registered
            assert any("已交由" in t for t in got), got
            link = registered[registered.index("http") :].split()[0]
            path = link[link.index("/api/v1/progress/") :]
            page = topo.http.get(path)
            assert page.status_code == 200 and page.json()["case_id"] == case_id
            # Each once: two resident notices, each sent on its one try, the contact masked.
            status, listed = topo.call("GET", f"/api/v1/cases/{case_id}/notifications")
            assert status == 200, listed
            resident = [n for n in listed["items"] if n["kind"].startswith("resident_")]
            assert sorted(n["kind"] for n in resident) == [
                "resident_dispatched",
                "resident_registered",
            ]
            assert all(
                n["status"] == "sent" and [a["outcome"] for a in n["attempts"]] == ["sent"]
                for n in resident
            ), resident
            assert PHONE not in json.dumps(listed)
    finally:
        gateway.close()
