"""Shared test plumbing: where the shared fixtures are, and a running embedded Gridflow."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from gridflow_app.folders import LUCHENG, jurisdiction_files

REPO = Path(__file__).resolve().parents[1]
# Nothing a test starts writes the checkout's .gridflow/admin-token (a developer's `make run`
# may be using it): the test session's servers write theirs here, each its own file.
TOKEN_ROOT = Path(tempfile.mkdtemp(prefix="gridflow-test-tokens-"))
os.environ.setdefault("GRIDFLOW_ADMIN_TOKEN_FILE", str(TOKEN_ROOT / "default-admin-token"))
# The tests act as one admin user and send floods of hundreds of reports a minute (a broker
# restart, a flood after a restart): that user's budget is far above them. The rate limits
# themselves are tested with limits of their own.
os.environ.setdefault("GRIDFLOW_RATE_USER", "1000000/min")
# Every request a test makes without a credential comes from 127.0.0.1 too, whichever test
# makes it: one address's budget would make a test's outcome depend on the ones before it.
os.environ.setdefault("GRIDFLOW_RATE_ANONYMOUS", "1000000/min")
# Base URL -> the admin token file of the server there, for replays and HTTP clients.
TOKEN_FILES: dict[str, Path] = {}


def admin_token(url: str) -> str:
    """The admin token the server at ``url`` wrote when it started."""
    return TOKEN_FILES[url].read_text().strip()


def _eventlet_patched() -> bool:
    try:
        from eventlet import patcher
    except ImportError:
        return False
    return patcher.is_monkey_patched("socket")


# nameko containers need an eventlet-patched process: the integration tests run under
# `nameko test tests/integration` (as `make test` does), the rest under plain pytest.
collect_ignore_glob = [] if _eventlet_patched() else ["integration/*"]
# The shared scenarios and fixtures: GRIDFLOW_SHARED, else `shared/` beside the repository (as a
# fresh clone in CI has it). Tests that need them fail, never skip, when they are not there.
SHARED = Path(os.environ.get("GRIDFLOW_SHARED") or REPO.parent / "shared")
GRIDFLOW = Path(sys.executable).parent / "gridflow"


def shared_scenarios() -> list[Path]:
    """Every shared scenario file; an error naming where they were looked for when none is."""
    folder = SHARED / "scenarios"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(
            f"no shared scenarios in {folder}: set GRIDFLOW_SHARED to the shared folder "
            "(the one holding scenarios/ and fixtures/)"
        )
    return files


# Shared scenarios that do not pass yet, with the reason: strict expected failures in both modes,
# so each turns into a failure the day it passes, and someone moves it to the plain list.
SCENARIOS_EXPECTED_TO_FAIL: dict[str, str] = {}


def scenario_params() -> list:
    """One pytest param per shared scenario, the expected failures marked strict."""
    return [
        pytest.param(
            path,
            id=path.stem,
            marks=[pytest.mark.xfail(strict=True, reason=SCENARIOS_EXPECTED_TO_FAIL[path.stem])]
            if path.stem in SCENARIOS_EXPECTED_TO_FAIL
            else [],
        )
        for path in shared_scenarios()
    ]


def replay(
    scenario: Path, url: str, poll_timeout: float | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`gridflow replay FILE --url URL`, as a person runs it."""
    extra = ["--timeout", str(poll_timeout)] if poll_timeout is not None else []
    env = dict(os.environ)
    if url in TOKEN_FILES:
        env["GRIDFLOW_ADMIN_TOKEN_FILE"] = str(TOKEN_FILES[url])
    return subprocess.run(
        [str(GRIDFLOW), "replay", str(scenario), "--url", url, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def poll_timeout_for(request) -> float | None:
    """An expected failure waits 3 s, not 15, for each expectation that does not hold: nothing
    it waits for exists yet, and the day it does, it holds at once (an XPASS, strict)."""
    return 3.0 if request.node.get_closest_marker("xfail") else None


def assert_replayed_cleanly(result: subprocess.CompletedProcess, context: str = "") -> None:
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout + result.stderr + context
    assert last.endswith(" 0 failed"), last


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)  # bounded wait for the server to answer
    raise TimeoutError(f"nothing answered at {url} within {timeout} s")


@pytest.fixture(scope="session")
def embedded_url(tmp_path_factory):
    """`gridflow run` (the embedded default) on the simulated clock, as `make run` starts it."""
    port = free_port()
    folder = tmp_path_factory.mktemp("embedded")
    log = folder / "gridflow.log"
    token_file = folder / "admin-token"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(GRIDFLOW), "run", "--port", str(port), "--clock", "simulated"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GRIDFLOW_ADMIN_TOKEN_FILE": str(token_file)},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", proc=proc)
        # The token file is written just before the server is announced as listening.
        deadline = time.monotonic() + 10
        while not token_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # bounded wait for the token file
        TOKEN_FILES[url] = token_file
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- the real broker and database ----------------------------------------------------------------
# Tests take RabbitMQ from AMQP_URI and PostgreSQL from DATABASE_URL (defaults: this machine's),
# and fall back to testcontainers only where a Docker engine runs and neither is given. Each test
# session works in a RabbitMQ vhost and a PostgreSQL database of its own, so it neither sees nor
# steals another run's messages.

import contextlib  # noqa: E402
import shutil  # noqa: E402
import uuid  # noqa: E402

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


def _docker_available() -> bool:
    return os.path.exists("/var/run/docker.sock") and shutil.which("docker") is not None


@pytest.fixture(scope="session")
def broker_base_uri():
    if os.environ.get("AMQP_URI") or not _docker_available():
        yield os.environ.get("AMQP_URI", DEFAULT_AMQP)
        return
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer() as rabbit:
        params = rabbit.get_connection_params()
        yield f"amqp://guest:guest@{params.host}:{params.port}/"


@pytest.fixture(scope="session")
def database_server_url():
    if os.environ.get("DATABASE_URL") or not _docker_available():
        yield os.environ.get("DATABASE_URL", DEFAULT_PG)
        return
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16") as pg:
        yield pg.get_connection_url()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def fresh_vhost(base_uri: str):
    """A vhost of its own on ``base_uri``'s broker (when rabbitmqctl can make one there),
    deleted afterwards; elsewhere the broker's URI as it is."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base_uri)
    local = parts.hostname in ("127.0.0.1", "localhost")
    if not (local and shutil.which("rabbitmqctl")):
        yield base_uri
        return
    vhost = f"gridflow_test_{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*")
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + vhost, "", ""))
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def amqp_uri(broker_base_uri):
    """A fresh vhost on the test broker for the session."""
    with fresh_vhost(broker_base_uri) as uri:
        yield uri


@contextlib.contextmanager
def fresh_database(server_url: str):
    """A PostgreSQL database of its own on ``server_url``'s server, dropped afterwards."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    url = make_url(server_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    name = f"gridflow_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(database_server_url):
    """A fresh PostgreSQL database for the session, dropped afterwards."""
    with fresh_database(database_server_url) as url:
        yield url


def lucheng_files() -> dict[str, str]:
    return jurisdiction_files(LUCHENG)
