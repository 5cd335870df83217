"""Third-party GeoReport v2 clients against the live embedded default (`gridflow run`, real
HTTP). ``civicbot`` (PyPI, 0.4.0: its ``Open311Client``) lists the services, reads a service's
definition, posts a request with an open311 key (its own validation against our service list
first), reads it back by id, by the id filter and by its token, and is refused without a key;
``georeport`` (PyPI, 0.3.1, which cannot post) reads the same request back in JSON and in XML."""

from __future__ import annotations

import httpx
import pytest
from civicbot.http import HttpError, HttpTransport, RateLimiter
from civicbot.open311 import Open311Client
from civicbot.registry import Endpoint
from georeport import GeoReport

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


def _civicbot(url: str) -> Open311Client:
    endpoint = Endpoint(
        id="lucheng", name="鹿城区 (Lucheng)", base_url=f"{url}/open311/v2", write=True
    )
    # Its politeness interval (0.5 s per host) is for cities' servers; ours is on loopback.
    transport = HttpTransport(rate_limiter=RateLimiter(min_interval=0.0))
    return Open311Client(endpoint, transport)


def test_a_third_party_client_lists_services_posts_and_reads_back(embedded_url):
    client = _civicbot(embedded_url)
    services = client.list_services()
    assert_valid("services.json", services)
    assert STREETLIGHT in {s["service_code"] for s in services}
    definition = client.get_service_definition(STREETLIGHT)
    assert definition["service_code"] == STREETLIGHT

    posted = client.create_request(
        STREETLIGHT,
        dry_run=False,
        confirm="SEND",
        api_key=_open311_key(embedded_url),
        validate_remote=True,
        lat=POINT["lat"],
        lng=POINT["lon"],
        description="第三方客户端：路灯不亮，晚上很黑",
        first_name="思思",
        last_name="庄",
        email="resident@example.org",
    )
    assert posted.dry_run is False and not posted.warnings
    [made] = posted.response
    request_id, token = made["service_request_id"], made["token"]
    assert request_id.startswith("GF-") and token

    read = client.get_request(request_id)
    assert read is not None
    assert read["service_request_id"] == request_id
    assert read["status"] == "open" and read["service_code"] == STREETLIGHT
    assert "路灯不亮" in read["description"]
    listed = client.list_requests(service_request_ids=[request_id])
    assert_valid("requests.json", listed)
    assert [r["service_request_id"] for r in listed] == [request_id]
    assert client.get_token(token) == [{"service_request_id": request_id, "token": token}]

    # georeport reads back what civicbot posted, in JSON and in XML.
    root = f"{embedded_url}/open311/v2"
    reader = GeoReport(root)
    assert reader.get_service_request(request_id)["status"] == "open"
    assert [s["service_code"] for s in reader.get_service_list()] == [
        s["service_code"] for s in services
    ]
    xml_reader = GeoReport(root, output_format="xml")
    xml_read = xml_reader.get_service_request(request_id)
    assert xml_read["service_request_id"] == request_id and xml_read["status"] == "open"


def test_the_third_party_client_is_refused_without_a_key(embedded_url):
    client = _civicbot(embedded_url)
    with pytest.raises(HttpError) as refused:
        client.create_request(
            STREETLIGHT,
            dry_run=False,
            confirm="SEND",
            api_key="gfk_" + "x" * 43,
            lat=POINT["lat"],
            lng=POINT["lon"],
            description="没有钥匙的请求",
        )
    assert refused.value.status == 403
    assert "api_key" in refused.value.body
