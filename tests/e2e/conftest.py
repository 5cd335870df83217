"""The real topology for end-to-end tests: deploy/topology.sh (the script behind `make up`)
starting every service as its own `nameko run` process, nginx in front, in a RabbitMQ vhost and
a PostgreSQL database of the test session's own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.conftest import REPO, TOKEN_FILES, free_port, lucheng_files
from tests.credentials import bearer, names_a_credential, update_sender

SERVICES = ("intake", "routing", "departments", "sla", "notify")


class Topology:
    def __init__(self, env: dict[str, str], var_dir, base_url: str):
        self.env = env
        self.var_dir = var_dir
        self.base_url = base_url
        # One keep-alive client for the test's calls, as a department system would hold one.
        self.first_up = ""
        self.http = httpx.Client(base_url=base_url, timeout=30, trust_env=False)
        self.holder_tokens: dict[str, str] = {}

    def script(self, action: str) -> str:
        """Run deploy/topology.sh ACTION; what it printed."""
        result = subprocess.run(
            [str(REPO / "deploy/topology.sh"), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr + self.logs()
        if action == "down":
            self.http.close()
        return result.stdout

    def pid(self, service: str) -> int:
        return int((self.var_dir / f"{service}.pid").read_text())

    def sigkill(self, service: str) -> None:
        pid = self.pid(service)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            # The killed child is reaped by nobody but init; a zombie counts as gone.
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    return
            time.sleep(0.05)  # bounded wait for the killed process to be gone
        raise AssertionError(f"{service} ({pid}) survived SIGKILL")

    def logs(self) -> str:
        out = []
        for service in SERVICES:
            path = self.var_dir / f"{service}.log"
            if path.exists():
                out.append(f"--- {service} ---\n" + path.read_text()[-3000:])
        return "\n".join(out)

    @property
    def admin_token(self) -> str:
        """The admin token `topology.sh up` wrote (`gridflow admin-token`)."""
        return (self.var_dir / "admin-token").read_text().strip()

    def holder_token(self, code: str) -> str:
        """A department's or unit's credential, made once through the admin API."""
        if code not in self.holder_tokens:
            response = self.http.post(
                "/api/v1/admin/keys",
                json={"holder": code, "label": f"e2e {code}"},
                headers=bearer(self.admin_token),
            )
            assert response.status_code == 201, response.text
            self.holder_tokens[code] = response.json()["token"]
        return self.holder_tokens[code]

    def call(
        self, method: str, path: str, body: dict | None = None, headers: dict | None = None
    ) -> tuple[int, dict]:
        """One request as the admin, or as the sender of a status update; ``headers`` naming
        a credential go as they are."""
        headers = dict(headers or {})
        if not names_a_credential(headers):
            sender = update_sender(path, body)
            headers.update(bearer(self.holder_token(sender) if sender else self.admin_token))
        response = self.http.request(method, path, json=body, headers=headers)
        return response.status_code, response.json() if response.content else {}


def start_topology(
    amqp_uri, database_url, var_dir, clock: str = "real", extra_env: dict | None = None
) -> Topology:
    """``extra_env``: more settings for every service (a test's secrets, short retry
    schedules)."""
    port = free_port()
    env = {
        **os.environ,
        "AMQP_URI": amqp_uri,
        "DATABASE_URL": database_url,
        "GRIDFLOW_CLOCK": clock,
        "VAR_DIR": str(var_dir),
        "GRIDFLOW_PORT": str(port),
        "BIN": str(REPO / ".venv/bin"),
        "GRIDFLOW_ADMIN_TOKEN_FILE": str(var_dir / "admin-token"),
        # Rate limits shared by the intake replicas in Redis: a database of the tests' own,
        # apart from a developer's `make up` on database 0.
        "REDIS_URL": os.environ.get("GRIDFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        # Where people reach this Gridflow (the proxy): the links mailed to departments.
        "GRIDFLOW_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **(extra_env or {}),
    }
    for service in SERVICES:
        env[f"{service.upper()}_HTTP"] = f"127.0.0.1:{free_port()}"
    topo = Topology(env, var_dir, f"http://127.0.0.1:{port}")
    TOKEN_FILES[topo.base_url] = var_dir / "admin-token"
    topo.first_up = topo.script("up")
    return topo


@contextlib.contextmanager
def running_topology(
    amqp_uri, database_url, var_dir, clock: str = "real", extra_env: dict | None = None
):
    """The real topology with Lucheng installed, stopped afterwards."""
    topo = start_topology(amqp_uri, database_url, var_dir, clock=clock, extra_env=extra_env)
    try:
        status, body = topo.call("PUT", "/api/v1/admin/jurisdiction", {"files": lucheng_files()})
        assert status == 200, body
        yield topo
    finally:
        topo.script("down")


@pytest.fixture(scope="module")
def topology(amqp_uri, database_url, tmp_path_factory):
    """The real topology on the real clock, Lucheng installed."""
    with running_topology(amqp_uri, database_url, tmp_path_factory.mktemp("topology")) as topo:
        yield topo


@pytest.fixture(scope="module")
def simulated_topology(amqp_uri, database_url, tmp_path_factory):
    """The real topology on the simulated clock, Lucheng installed (a replay installs its own)."""
    var_dir = tmp_path_factory.mktemp("simulated")
    with running_topology(amqp_uri, database_url, var_dir, clock="simulated") as topo:
        yield topo
