"""The API reference page (``/api/v1/docs``) in a real browser: Debian's Chromium, headless,
driven by Playwright (the fixture of tests/e2e/test_browser_signin.py), against `gridflow run`
over real HTTP.

The page lists every operation of the live document, grouped by tag; the filter box hides what
does not match and shows it again when cleared; ``#op-<operationId>`` opens one operation; a
schema with a rule across its fields shows each of its shapes. Throughout: no console error, no
Content-Security-Policy violation, no script error, and nothing asked of any origin but
Gridflow's own (the page works offline). A screenshot of each step is saved under the test's tmp
folder."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.test_browser_signin import browser  # noqa: F401  (the fixture: Debian's Chromium)

pytestmark = pytest.mark.e2e


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    # Every wait the browser makes is bounded: a test that hangs fails instead.
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def document(embedded_url) -> dict:
    answer = httpx.get(embedded_url + "/api/v1/openapi.json", timeout=10)
    assert answer.status_code == 200
    return answer.json()


class Watched:
    """A page whose console errors, CSP violations, script errors and requests are recorded."""

    def __init__(self, context: BrowserContext, origin: str):
        self.origin = origin
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page: Page = context.new_page()
        self.page.on("pageerror", lambda exc: self.problems.append(f"script error: {exc}"))
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type == "error" or "Content Security Policy" in m.text
                else None
            ),
        )
        self.page.on("request", lambda r: self.requests.append(r.url))
        # Which resource a "Failed to load resource" in the console was.
        self.page.on(
            "response",
            lambda r: self.problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None,
        )

    def open(self, path: str) -> None:
        answer = self.page.goto(self.origin + path)
        assert answer is not None and answer.status == 200
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    def assert_clean(self) -> None:
        assert self.problems == []
        outside = [u for u in self.requests if _origin(u) != _origin(self.origin)]
        assert outside == [], f"fetched from outside the origin: {outside}"
        # It did load the document it shows (the same origin, not a copy baked in).
        assert self.origin + "/api/v1/openapi.json" in self.requests


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(p, m, op) for p, ops in document["paths"].items() for m, op in ops.items()]


def test_the_page_lists_every_operation_and_filters_them(embedded_url, context, document, tmp_path):
    watched = Watched(context, embedded_url)
    page = watched.page
    watched.open("/api/v1/docs")
    operations = _operations(document)
    shown = page.locator("details.op")
    expect(shown).to_have_count(len(operations))
    for _path, _method, op in operations:
        expect(page.locator(f'[id="op-{op["operationId"]}"]')).to_have_count(1)
    report = page.locator("#op-post_report")
    expect(report.locator("summary")).to_contain_text("/api/v1/reports")
    expect(report.locator("summary .method")).to_have_text("post")
    # Each tag has its group, and the contents list says how many operations it holds.
    for tag in {op["tags"][0] for _p, _m, op in operations}:
        count = sum(1 for _p, _m, op in operations if op["tags"][0] == tag)
        expect(page.locator(f'#toc a[href="#tag-{tag}"]')).to_have_text(f"{tag} ({count})")
    page.screenshot(path=tmp_path / "01-all.png")

    page.locator("#filter").fill("admin/keys")
    visible = page.locator("details.op:not(.hidden)")
    keys = [op for p, _m, op in operations if "admin/keys" in p]
    expect(visible).to_have_count(len(keys))
    expect(page.locator("#op-post_key")).to_be_visible()
    expect(page.locator("#op-post_report")).to_be_hidden()
    page.screenshot(path=tmp_path / "02-filtered.png")
    # A summary's words find it too, whatever their case.
    page.locator("#filter").fill("PROMETHEUS")
    expect(visible).to_have_count(1)
    expect(page.locator("#op-get_metrics")).to_be_visible()
    page.locator("#filter").fill("")
    expect(visible).to_have_count(len(operations))
    watched.assert_clean()


def test_an_operation_opens_from_its_anchor_with_its_answers(
    embedded_url, context, document, tmp_path
):
    watched = Watched(context, embedded_url)
    page = watched.page
    watched.open("/api/v1/docs#op-post_order")
    order = page.locator("#op-post_order")
    expect(order).to_have_attribute("open", "")
    body = order.locator(".body")
    expect(body).to_be_visible()
    expect(body).to_contain_text("bearerToken")
    for status in document["paths"]["/api/v1/cases/{case_id}/orders"]["post"]["responses"]:
        expect(body.locator(f"td.status-{status[0]}", has_text=status).first).to_be_visible()
    expect(body.locator('a[href="#schema-Order"]').first).to_be_visible()
    # Closed operations stay closed.
    expect(page.locator("#op-post_report")).not_to_have_attribute("open", "")
    page.screenshot(path=tmp_path / "03-order.png")
    watched.assert_clean()


def test_a_rule_across_fields_shows_each_shape(embedded_url, context, tmp_path):
    watched = Watched(context, embedded_url)
    page = watched.page
    watched.open("/api/v1/docs#schema-Location")
    location = page.locator("#schema-Location")
    expect(location).to_contain_text("Exactly one of a point")
    expect(location.locator("h4.shape")).to_have_text(["1. a point", "2. a grid", "3. an address"])
    expect(location.locator("table").nth(0)).to_contain_text("lat *")
    expect(location.locator("table").nth(0)).not_to_contain_text("grid_code")
    order_shapes = page.locator("#schema-Order h4.shape")
    expect(order_shapes.first).to_contain_text("assign")
    expect(page.locator("#schema-Order table").first).to_contain_text("unit *")
    page.screenshot(path=tmp_path / "04-location.png", full_page=False)
    watched.assert_clean()


def test_the_page_says_so_when_the_document_cannot_load(embedded_url, context):
    watched = Watched(context, embedded_url)
    page = watched.page
    # The document's request fails as a network outage would: the page says it, no script error.
    page.route("**/api/v1/openapi.json", lambda route: route.abort())
    page.goto(embedded_url + "/api/v1/docs")
    expect(page.locator("#operations")).to_contain_text("could not be loaded")
    assert [p for p in watched.problems if "script error" in p] == []
