"""The channels through the real topology (each service its own `nameko run` process, nginx in
front, deploy/topology.sh): an Open311 request posted with an open311 key, a WeChat resident's
location and text (signed with the account's token, configured by a file: reference), and two
alerts of one device each reach a case that routing routes and dispatches to a holder."""

from __future__ import annotations

import re
import subprocess
import time
from xml.etree import ElementTree as ET

import httpx
import pytest

from gridflow_common.domain import vocabulary as v
from gridflow_intake import wechat_format as wf
from tests.conftest import REPO, free_port, wait_http
from tests.credentials import bearer
from tests.e2e.conftest import running_topology

pytestmark = pytest.mark.e2e
TOKEN = "wechat-topology-token-0b7a"
OPENID = "oTOPO_resident_1"
CASE_ID = re.compile(r"GF-\d{8}-[A-Z]{10}")


@pytest.fixture(scope="module")
def topo(amqp_uri, database_url, tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("channels")
    secret = var_dir / "wechat-token"
    secret.write_text(TOKEN + "\n")
    # No reference given: deploy/topology.sh finds the token file in its VAR_DIR.
    with running_topology(amqp_uri, database_url, var_dir) as topology:
        yield topology


@pytest.fixture
def second_intake(topo):
    """Another intake replica (its own `nameko run` process, as topology.sh starts the first)
    on the same broker and database; its own port, as a second upstream of nginx would be."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **topo.env,
        "INTAKE_HTTP": address,
        # Configured as topology.sh configures the first (its token file in VAR_DIR).
        "GRIDFLOW_WECHAT_TOKEN_REF": f"file:{topo.var_dir / 'wechat-token'}",
    }
    with open(topo.var_dir / "intake-2.log", "ab") as log:
        proc = subprocess.Popen(
            [
                str(REPO / ".venv/bin/nameko"),
                "run",
                "--config",
                "services/intake/config.yaml",
                "gridflow_intake.service:IntakeService",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://{address}/healthz", proc=proc)
        with httpx.Client(base_url=f"http://{address}", timeout=30, trust_env=False) as client:
            yield client
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _key(topo, **body) -> str:
    status, answer = topo.call("POST", "/api/v1/admin/keys", {"label": "e2e channel", **body})
    assert status == 201, answer
    return answer["token"]


def _dispatched(topo, case_id: str) -> dict:
    """The case's view once routing has dispatched it to a holder (bounded: 30 s)."""
    deadline = time.monotonic() + 30
    view: dict = {}
    while time.monotonic() < deadline:
        status, view = topo.call("GET", f"/api/v1/cases/{case_id}")
        assert status == 200, view
        if view["status"] == "dispatched" and view["handler"]:
            return view
        time.sleep(0.1)  # bounded: the deadline above
    raise AssertionError(f"{case_id} never dispatched: {view}\n{topo.logs()}")


def test_an_open311_request_is_dispatched(topo):
    key = _key(topo, channel="open311")
    posted = topo.http.post(
        "/open311/v2/requests.json",
        data={
            "api_key": key,
            "service_code": "component.streetlight",
            # Not the other modules' streetlight point (27.995, 120.556): the topology's database
            # is the session's, and a case there would join this report (merged within 50 m).
            "lat": "27.9965",
            "long": "120.5575",
            "description": "青园社区门口的路灯不亮已经三天了",
        },
    )
    assert posted.status_code == 201, posted.text
    [made] = posted.json()
    view = _dispatched(topo, made["service_request_id"])
    assert view["category"] == "component.streetlight"
    read = topo.http.get(f"/open311/v2/requests/{made['service_request_id']}.json")
    assert read.status_code == 200 and read.json()[0]["status"] == "open"
    assert read.json()[0]["agency_responsible"]


def _wechat(client: httpx.Client, kind: str, msg_id: str, fields: str) -> httpx.Response:
    timestamp = str(int(time.time()))
    body = (
        f"<xml><ToUserName>gh_lucheng</ToUserName><FromUserName>{OPENID}</FromUserName>"
        f"<CreateTime>{timestamp}</CreateTime><MsgType>{kind}</MsgType>{fields}"
        f"<MsgId>{msg_id}</MsgId></xml>"
    ).encode()
    params = {
        "signature": wf.signature(TOKEN, timestamp, "n7"),
        "timestamp": timestamp,
        "nonce": "n7",
    }
    return client.post(
        "/wechat/callback", params=params, content=body, headers={"Content-Type": "text/xml"}
    )


def test_a_wechat_location_and_text_on_two_replicas_are_dispatched(topo, second_intake):
    # The location reaches the second replica, the text the first (through nginx): they pair
    # through intake's database.
    located = _wechat(
        second_intake,
        "location",
        "9001",
        "<Location_X>28.05</Location_X><Location_Y>120.635</Location_Y>",
    )
    assert located.status_code == 200, located.text
    assert not CASE_ID.search(ET.fromstring(located.content).findtext("Content"))
    texted = _wechat(topo.http, "text", "9002", "<Content>路灯不亮，晚上很黑</Content>")
    assert texted.status_code == 200, texted.text
    assert texted.headers["content-type"].startswith("application/xml")
    content = ET.fromstring(texted.content).findtext("Content")
    case_id = CASE_ID.search(content).group()
    assert f"{topo.base_url}/api/v1/progress/gfr_" in content
    view = _dispatched(topo, case_id)
    assert view["category"] == "component.streetlight", view
    # The platform retries one MsgId: the same case, no second report.
    again = _wechat(second_intake, "text", "9002", "<Content>路灯不亮，晚上很黑</Content>")
    assert case_id in ET.fromstring(again.content).findtext("Content")
    assert topo.call("GET", f"/api/v1/cases/{case_id}")[1]["reporters"] == 1

    unsigned = topo.http.post(
        "/wechat/callback", content=b"<xml/>", headers={"Content-Type": "text/xml"}
    )
    assert unsigned.status_code == 401


def test_two_alerts_of_one_device_are_one_dispatched_case(topo):
    key = _key(
        topo, channel="sensor", device="sl-e2e-01", device_place={"lat": 28.02, "lon": 120.56}
    )
    answers = []
    for i in (1, 2):
        posted = topo.http.post(
            "/api/v1/sensors/alerts",
            json={
                "kind": "lamp_failure",
                "category": "component.streetlight",
                "alert_id": f"a{i}",
                "description": "路灯不亮",
            },
            headers=bearer(key),
        )
        assert posted.status_code in (200, 201), posted.text
        answers.append(posted.json())
    assert [a["outcome"] for a in answers] == [v.OUTCOME_REGISTERED, v.OUTCOME_JOINED]
    assert answers[0]["case_id"] == answers[1]["case_id"]
    view = _dispatched(topo, answers[0]["case_id"])
    assert view["reporters"] == 2
