"""Third-party GeoReport v2 clients against the live embedded default (`gridflow run`, real
HTTP): the PyPI client ``georeport`` (0.3.1) lists the services and reads requests back, in JSON
and in XML. It cannot post (its own README: "does not currently support the creation of new 311
service requests"), and the PyPI and npm clients that can (``three`` 0.8, ``open311`` 1.1, npm
``open311`` 0.0.12) are Python 2 code or need a git dependency, so none installs here: the post is
made by Gridflow's departments' Open311 adapter, a client of the spec written apart from the
server (docs/channels.md names this gap)."""

from __future__ import annotations

import datetime as dt

import httpx
from georeport import GeoReport

from gridflow_common.adapters.contract import AdapterContext, Delivery, OpenDelivery
from gridflow_common.domain.jurisdiction import AdapterConfig
from gridflow_departments.adapters.open311 import Open311Adapter
from tests.conftest import admin_token
from tests.support.channels import POINT, STREETLIGHT, assert_valid


def _open311_key(url: str) -> str:
    answer = httpx.post(
        f"{url}/api/v1/admin/keys",
        json={"channel": "open311", "label": "third-party client"},
        headers={"Authorization": f"Bearer {admin_token(url)}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def _adapter(url: str, key: str) -> Open311Adapter:
    context = AdapterContext(
        secret=lambda ref: key,
        sign_link=lambda *a: "",
        public_url=url,
        now=lambda: dt.datetime.now(dt.UTC),
    )
    config = AdapterConfig(
        code="open311-client",
        adapter="open311",
        endpoint=f"{url}/open311/v2",
        credential_ref="env:UNUSED",
        options={"service_code": STREETLIGHT},
    )
    return Open311Adapter(config, context)


def test_a_third_party_client_lists_services_posts_and_reads_back(embedded_url):
    root = f"{embedded_url}/open311/v2"
    client = GeoReport(root)
    services = client.get_service_list()
    assert_valid("services.json", services)
    assert STREETLIGHT in {s["service_code"] for s in services}
    definition = client.get_service_definition(STREETLIGHT)
    assert definition["service_code"] == STREETLIGHT

    xml_client = GeoReport(root, output_format="xml")
    xml_services = xml_client.get_service_list()
    assert [s["service_code"] for s in xml_services] == [s["service_code"] for s in services]

    adapter = _adapter(embedded_url, _open311_key(embedded_url))
    delivery = Delivery(
        delivery_id="d-1",
        kind="case",
        case_id="GF-elsewhere-1",
        assignment_id="a-1",
        unit="u",
        department=None,
        role="lead",
        message={
            "category": STREETLIGHT,
            "description": "第三方客户端：路灯不亮",
            "location": {"point": POINT},
        },
    )
    pushed = adapter.push(delivery)
    request_id = pushed.external_ref
    assert request_id and request_id.startswith("GF-"), pushed

    read = client.get_service_request(request_id)
    assert read["service_request_id"] == request_id
    assert read["status"] == "open" and read["service_code"] == STREETLIGHT
    assert "路灯不亮" in read["description"]
    listed = client.get_service_requests(service_request_id=request_id)
    assert_valid("requests.json", listed)
    assert [r["service_request_id"] for r in listed] == [request_id]
    xml_read = xml_client.get_service_request(request_id)
    assert xml_read["service_request_id"] == request_id and xml_read["status"] == "open"

    # The adapter's own polling reads the same request back: open, as it was.
    polled = adapter.poll_status(
        [OpenDelivery("d-1", "GF-elsewhere-1", "a-1", "u", request_id, last_word="open")]
    )
    assert polled == []
    adapter.close()
