"""The board in a real browser on the real topology: every service its own `nameko run`
process, nginx in front (deploy/nginx.conf routes / and the live feed to intake). What only this
topology shows: the pages through the proxy, and the live feed's events reaching the browser as
they happen through nginx and nameko's (eventlet's) web server, neither of which may hold them
back."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext

from tests.e2e.test_board_browser import (
    FRIDAY,
    RUBBISH,
    _admin,
    green_case,
    watch_a_case_turn_orange,
)
from tests.e2e.test_browser_signin import browser  # noqa: F401  (the fixture: Debian's Chromium)

pytestmark = pytest.mark.e2e


@dataclass
class ProxySite:
    url: str
    token: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def site(simulated_topology) -> ProxySite:
    return ProxySite(simulated_topology.base_url, simulated_topology.admin_token)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    # Every wait the browser makes is bounded: a test that hangs fails instead.
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        ctx.close()


def test_the_pages_come_through_the_proxy_with_their_headers(site):
    with httpx.Client(base_url=site.url, trust_env=False, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        script = client.get("/static/board.js")
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert client.get("/static/../board.html").status_code == 404
        # Anything else is still intake's JSON 404.
        nothing = client.get("/nothing/here")
        assert nothing.status_code == 404 and "errors" in nothing.json()
        # The live feed asks for a credential, through the proxy too.
        assert client.get("/api/v1/board/events").status_code == 401


def test_the_board_shows_a_case_turning_orange_through_the_proxy(site, context, tmp_path: Path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    # The topology's database is the test session's: earlier modules may have moved its clock
    # past Friday; a reset (which may set the clock back) starts the week afresh.
    _admin(site, "POST", "/api/v1/admin/reset", {"now": FRIDAY})
    watch_a_case_turn_orange(site, context, green_case(site), shots)


def test_open_live_feeds_beyond_intakes_workers_leave_the_api_answering(site):
    """intake runs 14 nameko workers (INTAKE_WORKERS); 20 open feeds hold none of them: the API
    still answers at once while every feed is open."""
    with contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(httpx.Client(base_url=site.url, trust_env=False, timeout=30))
            for _ in range(20)
        ]
        for client in clients:
            feed = stack.enter_context(
                client.stream("GET", "/api/v1/board/events", headers=site.admin)
            )
            assert feed.status_code == 200
            assert feed.headers["content-type"] == "text/event-stream; charset=utf-8"
            # The stream's first lines arrive at once (nothing holds them back).
            assert next(feed.iter_lines()).startswith("retry: ")
        started = time.monotonic()
        with httpx.Client(base_url=site.url, trust_env=False, timeout=10) as client:
            for _ in range(5):
                assert client.get("/api/v1/me", headers=site.admin).status_code == 200
        assert time.monotonic() - started < 5


def test_the_case_page_notices_come_from_notify_over_rpc(site):
    """Intake asks the notify process (nameko RPC) for the notices it sent for a case: the
    squad's duty person's dispatch notice, its contact masked."""
    case_id = _admin(
        site, "POST", "/api/v1/reports", {**RUBBISH, "external_id": os.urandom(6).hex()}
    )["case_id"]
    deadline = time.monotonic() + 30
    while True:
        listed = _admin(site, "GET", f"/api/v1/cases/{case_id}/notifications")
        kinds = [n["kind"] for n in listed["items"]]
        if "dispatched" in kinds or time.monotonic() > deadline:
            break
        # bounded: polled until the deadline above, then the assertion below fails
        time.sleep(0.3)
    assert "dispatched" in kinds, listed
    notice = next(n for n in listed["items"] if n["kind"] == "dispatched")
    assert notice["recipient"]["name"] and notice["recipient"]["role"]
    assert re.fullmatch(r"1[3-9]\d\*{4}\d{4}", notice["recipient"]["contact"]), notice
    assert not re.search(r"1[3-9]\d{9}", str(listed))
    assert (notice["channel"], notice["status"]) == ("sms", "recorded")
