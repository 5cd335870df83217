"""The channels through real HTTP on `gridflow run` (the embedded default as a person starts it):
a WeChat account configured by a file: reference, a resident's location and text answered with
the case number and a progress link that opens, a retried MsgId making no second report; a
device's two alerts making one case; an Open311 key refused at the sensors' door."""

from __future__ import annotations

import re
import time
from xml.etree import ElementTree as ET

import httpx

from gridflow_intake import wechat_format as wf
from tests.unit.running_server import running_gridflow

TOKEN = "wechat-http-token-5c2e"
OPENID = "oHTTP_resident_1"


def _signed() -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        "signature": wf.signature(TOKEN, timestamp, "n1"),
        "timestamp": timestamp,
        "nonce": "n1",
    }


def _message(kind: str, msg_id: str, fields: str) -> bytes:
    return (
        f"<xml><ToUserName>gh_acct</ToUserName><FromUserName>{OPENID}</FromUserName>"
        f"<CreateTime>1</CreateTime><MsgType>{kind}</MsgType>{fields}<MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def test_channels_over_real_http(tmp_path, monkeypatch):
    secret = tmp_path / "wechat-token"
    secret.write_text(TOKEN + "\n")
    monkeypatch.setenv("GRIDFLOW_WECHAT_TOKEN_REF", f"file:{secret}")
    with running_gridflow(tmp_path) as g, g.client() as client:
        xml = {"Content-Type": "text/xml"}
        located = client.post(
            "/wechat/callback",
            params=_signed(),
            content=_message(
                "location", "7001", "<Location_X>28.05</Location_X><Location_Y>120.635</Location_Y>"
            ),
            headers=xml,
        )
        assert located.status_code == 200, located.text
        texted = client.post(
            "/wechat/callback",
            params=_signed(),
            content=_message("text", "7002", "<Content>路灯不亮</Content>"),
            headers=xml,
        )
        content = ET.fromstring(texted.content).findtext("Content")
        case_id = re.search(r"GF-\d{8}-[A-Z]{10}", content).group()
        link = re.search(r"http://\S+/api/v1/progress/\S+", content).group()
        progress = httpx.get(link, timeout=30)
        assert progress.status_code == 200 and progress.json()["case_id"] == case_id
        retried = client.post(
            "/wechat/callback",
            params=_signed(),
            content=_message("text", "7002", "<Content>路灯不亮</Content>"),
            headers=xml,
        )
        assert case_id in ET.fromstring(retried.content).findtext("Content")
        forged = client.post(
            "/wechat/callback",
            params={**_signed(), "signature": "f" * 40},
            content=_message("text", "7003", "<Content>青园社区井盖坏了</Content>"),
            headers=xml,
        )
        assert forged.status_code == 403

        made = client.post(
            "/api/v1/admin/keys",
            json={
                "channel": "sensor",
                "device": "wl-http-1",
                "device_place": {"lat": 28.02, "lon": 120.56},
            },
            headers=g.admin,
        )
        assert made.status_code == 201, made.text
        device = {"Authorization": f"Bearer {made.json()['token']}"}
        first = client.post("/api/v1/sensors/alerts", json={"kind": "light_off"}, headers=device)
        second = client.post("/api/v1/sensors/alerts", json={"kind": "light_off"}, headers=device)
        assert first.status_code == 201 and second.status_code == 200, second.text
        assert second.json()["case_id"] == first.json()["case_id"]
        case = client.get(f"/api/v1/cases/{first.json()['case_id']}", headers=g.admin).json()
        assert case["reporters"] == 2

        open311 = client.post("/api/v1/admin/keys", json={"channel": "open311"}, headers=g.admin)
        refused = client.post(
            "/api/v1/sensors/alerts",
            json={"kind": "x", "location": {"lat": 28.05, "lon": 120.635}},
            headers={"Authorization": f"Bearer {open311.json()['token']}"},
        )
        assert refused.status_code == 403
