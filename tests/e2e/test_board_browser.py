"""The command center's board and case page in a real browser: Debian's Chromium, headless,
driven by Playwright, against `gridflow run` over real HTTP (as tests/e2e/test_browser_signin.py
does; see its notes on the browser's flags).

Sign in as the command center on the board's own form, watch a case turn orange without a
reload when the simulated clock moves, open the case page and put the case on the long-term list;
sign in as another department's user and fail to open the case, by the page and by the API.
Each step saves a screenshot (under the test's tmp folder, ``screenshots/``)."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.test_browser_signin import browser  # noqa: F401  (the fixture: Debian's Chromium)
from tests.unit.running_server import RunningGridflow, running_gridflow

pytestmark = pytest.mark.e2e

# Exposed rubbish on a Friday afternoon (scenario 04): due within a working day, orange by
# Monday morning (Sunday 20 September 2026 is a make-up workday).
FRIDAY = "2026-09-18T16:00:00+08:00"
MONDAY = "2026-09-21T09:00:00+08:00"
# ... and up to the district's urban-management bureau by Monday afternoon.
ESCALATED = "2026-09-21T16:00:00+08:00"
DISTRICT_BUREAU = "urban_management-330302"
RUBBISH = {
    "channel": "grid_app",
    "description": "金雅苑小区垃圾桶满溢，暴露垃圾无人清理",
    "category": "event.exposed_rubbish",
    "location": {"lat": 28.05, "lon": 120.556},
}
HOLDER_DEPARTMENT = "urban_management"
# The squad of the street the rubbish is in, and the names Lucheng gives it and its bureau.
SQUAD = "urban_management-330302005"
SQUAD_NAME = "南汇执法中队"
BUREAU_NAME = "鹿城区综合行政执法局"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[RunningGridflow]:
    with running_gridflow(tmp_path_factory.mktemp("board")) as running:
        yield running


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    # Every wait the browser makes is bounded: a test that hangs fails instead.
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        ctx.close()


class Site(Protocol):
    """Where the browser goes: `gridflow run` here, the real topology's proxy in
    tests/e2e/test_board_on_real_topology.py."""

    url: str

    @property
    def admin(self) -> dict[str, str]: ...


def _user(server: Site, role: str, scope: str | None = None) -> tuple[str, str]:
    """A user with a password (made by the admin), who signs in on the page's form."""
    username = f"{role.replace('_', '-')}-{os.urandom(3).hex()}"
    password = secrets.token_urlsafe(16)
    _admin(
        server,
        "POST",
        "/api/v1/admin/users",
        {"username": username, "role": role, "scope": scope, "password": password},
    )
    return username, password


def _admin(server: Site, method: str, path: str, body: dict | None = None) -> dict:
    answer = httpx.request(
        method, server.url + path, json=body, headers=server.admin, timeout=30, trust_env=False
    )
    assert answer.status_code < 300, (path, answer.status_code, answer.text)
    return answer.json()


def _case_until(server: Site, case_id: str, field: str, value: str) -> dict:
    """The case once ``field`` shows ``value`` (the embedded default's projections run on their
    own thread), polled with a deadline."""
    deadline = time.monotonic() + 20
    while True:
        view = _admin(server, "GET", f"/api/v1/cases/{case_id}")
        if view[field] == value or time.monotonic() > deadline:
            assert view[field] == value, view
            return view
        # bounded: polled until the deadline above, then the assertion fails
        time.sleep(0.2)


def green_case(server: Site) -> str:
    """A green case on Friday afternoon, held by the street's urban-management squad."""
    _admin(server, "PUT", "/api/v1/admin/clock", {"now": FRIDAY})
    made = _admin(
        server, "POST", "/api/v1/reports", {**RUBBISH, "external_id": os.urandom(6).hex()}
    )
    case_id = made["case_id"]
    view = _case_until(server, case_id, "status", "dispatched")
    assert view["colour"] == "green" and view["lead"] == HOLDER_DEPARTMENT
    return case_id


@pytest.fixture(scope="module")
def rubbish(server: RunningGridflow) -> str:
    return green_case(server)


def _sign_in_on_the_page(page: Page, username: str, password: str) -> None:
    form = page.locator("#signin-form")
    expect(form).to_be_visible()
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()
    expect(page.locator("#signin")).to_be_hidden()


def test_the_board_shows_a_case_turning_orange_without_a_reload(server, context, rubbish, shots):
    watch_a_case_turn_orange(server, context, rubbish, shots)


def watch_a_case_turn_orange(server: Site, context: BrowserContext, case_id: str, shots: Path):
    """Sign in on the board as the command center, move the clock, see the case turn orange in
    the same document, then open its page."""
    rubbish = case_id
    username, password = _user(server, "command_center")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    # The CSP would refuse an inline script or a style: the console says so.
    page.on(
        "console",
        lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
    )
    answer = page.goto(server.url + "/")
    assert answer is not None and answer.status == 200
    expect(page.locator("h1")).to_have_text("网格化指挥中心 · 四色预警看板")
    page.screenshot(path=shots / "01-sign-in.png")
    _sign_in_on_the_page(page, username, password)
    expect(page.locator("#board")).to_be_visible()
    expect(page.locator("#who")).to_contain_text(username)
    expect(page.locator("#live-state")).to_have_attribute("data-live", "on")
    page.screenshot(path=shots / "02-board.png")

    # One document from here on: a marker in it, and every navigation of the page counted.
    page.evaluate("window.boardMarker = 'still here'")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    _admin(server, "PUT", "/api/v1/admin/clock", {"now": MONDAY})
    _case_until(server, rubbish, "colour", "orange")
    orange = page.locator(f'#live-events li[data-case-id="{rubbish}"][data-colour="orange"]')
    expect(orange.first).to_be_visible()
    expect(orange.first.locator(".badge")).to_have_text("橙色")
    # The board's figures follow: where the summary endpoint is there (the cases work brings
    # it), its table of warned cases shows the case orange, again without a reload.
    summary = httpx.get(
        server.url + "/api/v1/board/summary", headers=server.admin, trust_env=False, timeout=30
    )
    if not (summary.status_code == 404 and "path" in summary.json()["errors"]):
        assert summary.status_code == 200, summary.text
        late = page.locator(f'#late tr[data-case-id="{rubbish}"][data-colour="orange"]')
        expect(late).to_be_visible()
        # Named for a Chinese reader: the category and the holder by name, codes as tooltips.
        expect(late).to_contain_text("暴露垃圾")
        expect(late.locator(f'[title="{SQUAD}"]')).to_have_text(SQUAD_NAME)
    assert page.evaluate("window.boardMarker") == "still here"
    assert navigations == []
    page.screenshot(path=shots / "03-orange.png", full_page=True)

    # The case page from the board: the case in orange, its grid drawn, its point in it.
    page.locator(f'#live-events li[data-case-id="{rubbish}"] a').first.click()
    page.wait_for_url(f"{server.url}/cases/{rubbish}")
    expect(page.locator("body")).to_have_attribute("data-loaded", "200")
    expect(page.locator("body")).to_have_attribute("data-colour", "orange")
    expect(page.locator("#case-title")).to_have_text(rubbish)
    # Names beside the codes: the category, the holder (its code kept beside its name), the
    # lead and the grid, each code the name's tooltip.
    category = page.locator('[data-field="category"]')
    expect(category).to_have_text("暴露垃圾")
    expect(category).to_have_attribute("title", RUBBISH["category"])
    expect(page.locator('[data-field="holder-name"]')).to_have_text(SQUAD_NAME)
    expect(page.locator('[data-field="holder-name"]')).to_have_attribute("title", SQUAD)
    expect(page.locator('[data-field="holder"]')).to_have_text(SQUAD)
    expect(page.locator('[data-field="lead"]')).to_have_text(BUREAU_NAME)
    area = page.locator('[data-field="area"]')
    expect(area).to_have_text(re.compile(r"网格"))
    expect(area).to_have_attribute("title", re.compile(r"^\d{15}$"))
    expect(page.locator("#map svg path.area")).to_have_count(1)
    expect(page.locator('#map svg circle[data-point="case"]')).to_have_count(1)
    assert page.locator("#map svg path.neighbour").count() >= 1
    expect(page.locator("#routing li").first).to_contain_text("urban_management")
    expect(page.locator('#assignments li .badge[data-colour="orange"]').first).to_be_visible()
    # In Chinese through and through: the timeline's details name their fields and words in
    # Chinese (承办, 动作: 督办), not the API's keys.
    timeline = page.locator("#timeline").inner_text()
    assert "承办：" in timeline and "督办" in timeline, timeline
    for key in ("handler:", "colour:", "action:", "queue:", "supervise", "remind_handler"):
        assert key not in timeline, (key, timeline)
    page.screenshot(path=shots / "04-case.png", full_page=True)

    # The case page follows the case too: Monday afternoon the case goes up to the district's
    # bureau (scenario 04), and the page shows the new holder without a reload.
    page.evaluate("window.caseMarker = 'still here'")
    navigations.clear()
    _admin(server, "PUT", "/api/v1/admin/clock", {"now": ESCALATED})
    _case_until(server, rubbish, "handler", DISTRICT_BUREAU)
    expect(page.locator('[data-field="holder"]')).to_have_text(DISTRICT_BUREAU)
    expect(page.locator('[data-field="holder-name"]')).to_have_text(BUREAU_NAME)
    assert page.evaluate("window.caseMarker") == "still here"
    assert navigations == []
    page.screenshot(path=shots / "05-escalated.png", full_page=True)
    assert problems == []


def test_english_is_a_toggle_away(server, context):
    page = context.new_page()
    page.goto(server.url + "/?lang=en")
    expect(page.locator("h1")).to_have_text("Grid command center · four-colour board")
    expect(page.locator("#lang-toggle")).to_have_text("中文")
    page.locator("#lang-toggle").click()
    expect(page.locator("h1")).to_have_text("网格化指挥中心 · 四色预警看板")


def test_the_case_page_puts_the_case_on_the_long_term_list(server, context, rubbish, shots):
    username, password = _user(server, "command_center")
    page = context.new_page()
    page.goto(f"{server.url}/cases/{rubbish}")
    _sign_in_on_the_page(page, username, password)
    expect(page.locator("body")).to_have_attribute("data-loaded", "200")
    # The notices sent for the case (the notification service's record): the squad's duty
    # person was told of the dispatch; the contact shown masked, never whole.
    panel = page.locator("#notifications-panel")
    expect(panel).to_have_attribute("data-available", "yes")
    dispatched = page.locator('#notifications li[data-kind="dispatched"]')
    expect(dispatched.first).to_be_visible()
    expect(dispatched.first).to_contain_text("派遣通知")
    expect(dispatched.first).to_contain_text("****")
    assert not re.search(r"1[3-9]\d{9}", panel.inner_text())
    page.once("dialog", lambda dialog: dialog.accept("待明年预算解决"))
    page.locator('#orders button[data-order="hold"]').click()
    expect(page.locator("#order-result")).to_have_attribute("data-status", "202")
    expect(page.locator("body")).to_have_attribute("data-status", "on_hold")
    page.screenshot(path=shots / "06-on-hold.png", full_page=True)
    assert _admin(server, "GET", f"/api/v1/cases/{rubbish}")["status"] == "on_hold"


def test_another_departments_user_cannot_open_the_case(server, context, rubbish, shots):
    username, password = _user(server, "department", "police")
    page = context.new_page()
    page.goto(f"{server.url}/cases/{rubbish}")
    _sign_in_on_the_page(page, username, password)
    expect(page.locator("body")).to_have_attribute("data-loaded", "404")
    expect(page.locator("#not-found")).to_be_visible()
    expect(page.locator("#case")).to_be_hidden()
    # Nothing of the case on the page.
    assert "金雅苑" not in page.content()
    page.screenshot(path=shots / "07-not-yours.png")
    fetch = """async (path) => {
        const r = await fetch(path, {signal: AbortSignal.timeout(10000)});
        return {status: r.status, body: await r.json()};
    }"""
    for path in (
        f"/api/v1/cases/{rubbish}",
        f"/api/v1/cases/{rubbish}/place",
        f"/api/v1/cases/{rubbish}/notifications",
    ):
        theirs = page.evaluate(fetch, path)
        nothing = page.evaluate(fetch, path.replace(rubbish, "GF-20260918-NOSUCHCASE"))
        assert theirs["status"] == nothing["status"] == 404, theirs
        assert "金雅苑" not in str(theirs["body"])
