"""The doors of the real topology over HTTP: the public proxy answers only the API, and asks for a
credential there; health and metrics are the operators', on each service's own port."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import SERVICES, start_topology

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def doors(amqp_uri, database_url, tmp_path_factory):
    """The real topology as `make up` starts it, its admin token in a file of the test's own
    (not the checkout's .gridflow/admin-token)."""
    var_dir = tmp_path_factory.mktemp("doors")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("GRIDFLOW_ADMIN_TOKEN", raising=False)
        env.setenv("GRIDFLOW_ADMIN_TOKEN_FILE", str(var_dir / "admin-token"))
        topo = start_topology(amqp_uri, database_url, var_dir)
    try:
        yield topo, (var_dir / "admin-token").read_text().strip()
    finally:
        topo.script("down")


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_the_proxy_does_not_serve_health_or_metrics(doors, path):
    topo, _ = doors
    answer = httpx.get(topo.base_url + path, timeout=10, trust_env=False)
    assert answer.status_code == 404
    assert answer.json() == {"errors": {"path": [f"no such endpoint: {path}"]}}


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_serves_health_and_metrics_on_its_own_port(doors, service):
    topo, _ = doors
    own = f"http://{topo.env[f'{service.upper()}_HTTP']}"
    health = httpx.get(own + "/healthz", timeout=10, trust_env=False)
    assert health.status_code == 200, health.text
    metrics = httpx.get(own + "/metrics", timeout=10, trust_env=False)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in metrics.text


def test_the_proxy_asks_for_a_credential_and_takes_the_right_one(doors):
    topo, admin_token = doors
    client = httpx.Client(base_url=topo.base_url, timeout=30, trust_env=False)
    with client:
        for path in ("/api/v1/admin/users", "/api/v1/cases/GF-20260105-NOSUCHCASE"):
            nobody = client.get(path)
            assert nobody.status_code == 401, nobody.text
            assert nobody.headers["www-authenticate"] == "Bearer"
            forged = client.get(path, headers={"Authorization": "Bearer gft_" + "x" * 43})
            assert forged.status_code == 401, forged.text
            assert "gft_" not in forged.text
        admin = {"Authorization": f"Bearer {admin_token}"}
        users = client.get("/api/v1/admin/users", headers=admin)
        assert users.status_code == 200, users.text
        assert admin_token not in users.text
        # A channel's key is no admin, through the proxy as in process.
        made = client.post("/api/v1/admin/keys", json={"channel": "hotline"}, headers=admin)
        assert made.status_code == 201, made.text
        key = {"Authorization": f"Bearer {made.json()['token']}"}
        assert client.get("/api/v1/admin/users", headers=key).status_code == 403
