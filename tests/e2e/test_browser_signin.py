"""Browser sign-in in a real browser: Debian's Chromium, headless, driven by Playwright, against
`gridflow run` over real HTTP.

The unit tests (test_sessions.py) check the cookies' attributes as werkzeug and httpx read them;
what only a browser decides is checked here: whether a script sees the session cookie, which
cookie a page of another site makes the browser send, whether a cross-origin write with a
custom header is sent at all. Gridflow is at http://127.0.0.1:PORT; the "other site" is a tiny
server of the test's own, reached as http://localhost:PORT2 (another site: cookies of 127.0.0.1
are not localhost's) and as http://127.0.0.1:PORT2 (the same site on another port: cookies do
not look at ports, so this one is the harder neighbour).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from gridflow_intake.access import CSRF_COOKIE, SESSION_COOKIE
from gridflow_intake.identity import BEARER, PREFIXES, SESSION
from gridflow_intake.models import audit, credentials, users
from gridflow_intake.sessions import AFTER_SIGNIN, BAD_LINK
from tests.unit.running_server import RunningGridflow, running_gridflow

pytestmark = pytest.mark.e2e

# Debian's package (`apt-get install chromium`, which .ci/run does); never a browser build of
# Playwright's own. GRIDFLOW_CHROMIUM points elsewhere.
CHROMIUM = os.environ.get("GRIDFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# What a page's script does to write, as Gridflow's own pages will: POST a JSON body with the
# CSRF header copied from document.cookie (or without it, or with one given).
# Every fetch in a page is bounded (10 s, AbortSignal.timeout): page.evaluate waits for its promise
# without a limit of its own.
WRITE_FROM_PAGE = """async ([url, header]) => {
    const headers = {'Content-Type': 'application/json'};
    if (header === 'from-cookie') {
        const m = document.cookie.match(/(?:^|; )gridflow_csrf=([^;]*)/);
        headers['X-CSRF-Token'] = m ? m[1] : '';
    } else if (header !== null) {
        headers['X-CSRF-Token'] = header;
    }
    try {
        const r = await fetch(url, {method: 'POST', credentials: 'include', headers,
                                    body: JSON.stringify({label: 'from the page'}),
                                    signal: AbortSignal.timeout(10000)});
        return {status: r.status, body: await r.text()};
    } catch (e) {
        return {status: null, error: String(e)};
    }
}"""


# -- what the tests run on -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[RunningGridflow]:
    with running_gridflow(tmp_path_factory.mktemp("browser")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run installs it)"
    )
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                # As root (CI, this machine) Chromium's sandbox cannot start: it is turned off,
                # which is safe here because the browser only loads the test's own pages on
                # loopback.
                "--no-sandbox",
                # A container's /dev/shm may be 64 MB, too small for Chromium: /tmp instead.
                "--disable-dev-shm-usage",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A browser profile of its own for each test: its own cookie jar."""
    ctx = browser.new_context()
    # Every wait the browser makes is bounded: a test that hangs fails instead.
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


class OtherSite:
    """A web server that is not Gridflow: Python's own, in a process of its own, serving the
    pages a test writes into its folder. Not a thread of this process: once nameko's web server
    has been imported here (other tests do), ``http.server`` on the ``http`` package is
    eventlet's green copy, whose "threads" serve one connection at a time, and a browser's idle
    preconnection then stalls every page."""

    def __init__(self, folder: Path, port: int):
        self.folder = folder
        self.port = port

    def put(self, name: str, html: str) -> None:
        (self.folder / name).write_text(html, encoding="utf-8")

    def url(self, host: str, name: str) -> str:
        return f"http://{host}:{self.port}/{name}"


@pytest.fixture(scope="module")
def other_site(tmp_path_factory) -> Iterator[OtherSite]:
    folder = tmp_path_factory.mktemp("other-site")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        # "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ...": the port it
        # chose (it exits, and the line is empty, if it cannot start).
        started = re.search(r" port (\d+) ", proc.stdout.readline() if proc.stdout else "")
        assert started, f"the other site's server did not start (exit code {proc.poll()})"
        yield OtherSite(folder, int(started.group(1)))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- helpers ---------------------------------------------------------------------------------------


def _new_user(server: RunningGridflow, prefix: str) -> tuple[str, str]:
    """A user made by an admin without a password, and the one-time sign-in link the admin API
    answered with (what `gridflow users create` prints)."""
    username = f"{prefix}{os.urandom(4).hex()}"
    made = server.create_user(username)
    return username, made["signin_link"]


def _shown_json(page: Page) -> dict:
    """The JSON answer the browser shows (Chromium puts a JSON document's text in a <pre>)."""
    return json.loads(page.locator("pre").first.inner_text())


def _sign_in(context: BrowserContext, server: RunningGridflow, prefix: str) -> tuple[Page, str]:
    username, link = _new_user(server, prefix)
    page = context.new_page()
    answer = page.goto(link)
    assert answer is not None and answer.status == 200
    assert page.url == server.url + AFTER_SIGNIN
    assert _shown_json(page)["name"] == username
    return page, username


def _bearer_tokens(server: RunningGridflow, username: str) -> list[str]:
    """The labels of the user's bearer tokens, read from the server's own database."""
    engine = server.engine()
    try:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(credentials.c.label)
                    .select_from(credentials.join(users, credentials.c.user_id == users.c.user_id))
                    .where(users.c.username == username, credentials.c.kind == "bearer")
                ).scalars()
            )
    finally:
        engine.dispose()


def _last_audit_id(server: RunningGridflow) -> int:
    engine = server.engine()
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(audit.c.id))).scalar() or 0
    finally:
        engine.dispose()


def _token_attempts(server: RunningGridflow, after: int) -> list[tuple[str, int]]:
    """(actor, status) of every refused POST /api/v1/me/tokens the server saw after audit line
    ``after`` (the audit log keeps each refusal)."""
    engine = server.engine()
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(audit.c.actor, audit.c.detail)
                .where(
                    audit.c.id > after,
                    audit.c.action == "post_my_token",
                    audit.c.outcome == "refused",
                )
                .order_by(audit.c.id)
            ).all()
    finally:
        engine.dispose()
    return [(r.actor, r.detail["status"]) for r in rows]


def _cookies(context: BrowserContext, server: RunningGridflow) -> dict[str, dict]:
    return {c["name"]: c for c in context.cookies(server.url)}


# -- signing in ------------------------------------------------------------------------------------


def test_a_signin_link_lands_on_me_signed_in_with_an_httponly_lax_session_and_strict_csrf(
    server, context
):
    page, username = _sign_in(context, server, "link")
    me = _shown_json(page)
    assert (me["kind"], me["name"], me["role"], me["credential_kind"]) == (
        "user",
        username,
        "command_center",
        "session",
    )
    # No password yet: the page will ask for one.
    assert me["has_password"] is False

    cookies = _cookies(context, server)
    session, csrf = cookies[SESSION_COOKIE], cookies[CSRF_COOKIE]
    assert (session["httpOnly"], session["sameSite"], session["secure"]) == (True, "Lax", False)
    assert (csrf["httpOnly"], csrf["sameSite"], csrf["secure"]) == (False, "Strict", False)
    assert session["path"] == csrf["path"] == "/"
    assert session["value"].startswith(PREFIXES[SESSION])

    # What a script on the page (an injected one too) can read: the CSRF value, not the session.
    visible = page.evaluate("document.cookie")
    assert f"{CSRF_COOKIE}={me['csrf_token']}" in visible.split("; ")
    assert SESSION_COOKIE not in visible and session["value"] not in visible


def test_the_link_gridflow_run_prints_at_start_signs_the_admin_in(server, context):
    printed = re.findall(r"https?://\S+/api/v1/session/link\?token=\S+", server.log.read_text())
    assert len(printed) == 1, server.log.read_text()
    page = context.new_page()
    answer = page.goto(printed[0])
    assert answer is not None and answer.status == 200
    me = _shown_json(page)
    assert (me["role"], me["credential_kind"]) == ("admin", "session")


def test_a_signin_link_works_once(server, context, browser):
    username, link = _new_user(server, "once")
    first = context.new_page()
    assert first.goto(link).status == 200
    assert _shown_json(first)["name"] == username

    # The same link again, in a browser that has no session (someone who found it in a mail
    # archive), and in the one that used it: 401 and the reason, no session.
    other = browser.new_context()
    try:
        again = other.new_page()
        answer = again.goto(link)
        assert answer is not None and answer.status == 401
        assert _shown_json(again)["errors"]["token"] == [BAD_LINK]
        assert again.url == link
        assert SESSION_COOKIE not in _cookies(other, server)
        me = again.goto(server.url + "/api/v1/me")
        assert me is not None and me.status == 401
    finally:
        other.close()
    answer = first.goto(link)
    assert answer is not None and answer.status == 401
    assert _shown_json(first)["errors"]["token"] == [BAD_LINK]


def test_a_signin_link_clicked_on_another_site_lands_signed_in_and_the_page_can_write(
    server, context, other_site
):
    """A mail client's web page is another site: the click is a cross-site navigation, the
    reason the session cookie is Lax and not Strict. The CSRF cookie (Strict) is set by that
    same answer, and Gridflow's page can read it and write."""
    username, link = _new_user(server, "mail")
    other_site.put("mail.html", f'<a id="link" href="{link}">sign in to Gridflow</a>')
    page = context.new_page()
    page.goto(other_site.url("localhost", "mail.html"))
    with page.expect_navigation(url=server.url + AFTER_SIGNIN):
        page.click("#link")
    assert _shown_json(page)["name"] == username
    wrote = page.evaluate(WRITE_FROM_PAGE, [server.url + "/api/v1/me/tokens", "from-cookie"])
    assert wrote["status"] == 201, wrote
    assert _bearer_tokens(server, username) == ["from the page"]


# -- writing from the page -------------------------------------------------------------------------


def test_a_write_from_gridflows_page_needs_the_csrf_header_from_the_cookie(server, context):
    page, username = _sign_in(context, server, "csrf")
    url = server.url + "/api/v1/me/tokens"

    without = page.evaluate(WRITE_FROM_PAGE, [url, None])
    assert without["status"] == 403, without
    assert "X-CSRF-Token" in json.loads(without["body"])["errors"]["csrf"][0]
    wrong = page.evaluate(WRITE_FROM_PAGE, [url, "0" * 64])
    assert wrong["status"] == 403, wrong
    assert _bearer_tokens(server, username) == []

    right = page.evaluate(WRITE_FROM_PAGE, [url, "from-cookie"])
    assert right["status"] == 201, right
    made = json.loads(right["body"])
    assert (
        made["token"].startswith(PREFIXES[BEARER])
        and made["credential"]["label"] == "from the page"
    )
    assert _bearer_tokens(server, username) == ["from the page"]
    # Reads need no header: the page lists the new token and the session it is using.
    listed = page.evaluate(
        "fetch('/api/v1/me/tokens', {signal: AbortSignal.timeout(10000)}).then(r => r.json())"
    )
    kinds = sorted((c["kind"], c["current"]) for c in listed["credentials"])
    assert kinds == [("bearer", False), ("session", True)]


# -- another site's pages --------------------------------------------------------------------------


def _attack_pages(server: RunningGridflow, csrf_guess: str) -> dict[str, str]:
    """What a hostile page tries against POST /api/v1/me/tokens: a form (the classic CSRF: a
    text/plain body that is a good request's JSON, ``{"label":"planted by a form="}``), and fetch
    with the browser's credentials: blind (no-cors), with the JSON type and a CSRF header (which
    needs the server's CORS consent first), and a read of GET /api/v1/me, whose answer carries
    the CSRF value."""
    target = server.url + "/api/v1/me/tokens"
    form = (
        f'<form id="f" method="POST" action="{target}" enctype="text/plain">'
        '<input type="hidden" name=\'{"label":"planted by a form\' value=\'"}\'>'
        "</form><script>document.getElementById('f').submit()</script>"
    )
    scripted = f"""<script>
    window.attempts = (async () => {{
        const out = {{}};
        const body = JSON.stringify({{label: 'planted by fetch'}});
        try {{
            const r = await fetch('{target}', {{method: 'POST', mode: 'no-cors',
                credentials: 'include', headers: {{'Content-Type': 'text/plain'}}, body,
                signal: AbortSignal.timeout(10000)}});
            out.blind = r.type;
        }} catch (e) {{ out.blind = 'failed: ' + e.name; }}
        const m = document.cookie.match(/(?:^|; )gridflow_csrf=([^;]*)/);
        out.csrf_cookie_seen = m !== null;
        const csrf = m ? m[1] : '{csrf_guess}';
        try {{
            const r = await fetch('{target}', {{method: 'POST', credentials: 'include',
                headers: {{'Content-Type': 'application/json', 'X-CSRF-Token': csrf}}, body,
                signal: AbortSignal.timeout(10000)}});
            out.with_header = r.status;
        }} catch (e) {{ out.with_header = 'failed: ' + e.name; }}
        try {{
            const r = await fetch('{server.url}/api/v1/me', {{credentials: 'include',
                signal: AbortSignal.timeout(10000)}});
            out.read_me = await r.text();
        }} catch (e) {{ out.read_me = 'failed: ' + e.name; }}
        return out;
    }})();
    </script>"""
    return {"form.html": form, "fetch.html": scripted}


@pytest.mark.parametrize(
    "host, status_seen, csrf_readable",
    [
        # Another site: the Lax session cookie is not sent with its POST, so Gridflow sees an
        # anonymous caller (401).
        ("localhost", 401, False),
        # The same site on another port: cookies know no ports, so the browser sends the session
        # cookie and the page can even read the CSRF cookie. The form still carries no header
        # (403), and fetch may not add one without the server's CORS consent, which Gridflow
        # never gives: that write is never sent.
        ("127.0.0.1", 403, True),
    ],
)
def test_another_sites_page_cannot_write_with_the_users_session(
    server, context, other_site, host, status_seen, csrf_readable
):
    page, username = _sign_in(context, server, "victim")
    session = _cookies(context, server)[SESSION_COOKIE]["value"]
    for name, html in _attack_pages(server, csrf_guess="0" * 64).items():
        other_site.put(name, html)
    before = _last_audit_id(server)

    hostile = context.new_page()
    hostile.goto(other_site.url(host, "form.html"))
    hostile.wait_for_url(server.url + "/api/v1/me/tokens")
    # The form's navigation shows Gridflow's refusal.
    refusal = _shown_json(hostile)
    assert refusal["errors"], refusal
    hostile.goto(other_site.url(host, "fetch.html"))
    attempts = hostile.evaluate("window.attempts")
    assert attempts["blind"] == "opaque"
    assert attempts["csrf_cookie_seen"] is csrf_readable
    # The preflight is refused (no Access-Control-Allow-Origin): the POST itself is never sent;
    # and the answer of GET /api/v1/me, with the CSRF value in it, is not the page's to read.
    assert attempts["with_header"] == "failed: TypeError", attempts
    assert attempts["read_me"] == "failed: TypeError", attempts

    # On the server: nothing was made, and what reached it was refused as expected, the form's
    # and the blind fetch's POST (never the one with the header).
    assert _bearer_tokens(server, username) == []
    actor = "anonymous" if status_seen == 401 else f"user:{username}"
    assert _token_attempts(server, before) == [(actor, status_seen)] * 2
    # And the user is still signed in, with the same session, and can write from Gridflow's page.
    assert _cookies(context, server)[SESSION_COOKIE]["value"] == session
    assert (
        page.evaluate(WRITE_FROM_PAGE, [server.url + "/api/v1/me/tokens", "from-cookie"])["status"]
        == 201
    )


# -- signing out -----------------------------------------------------------------------------------


def test_signing_out_needs_the_csrf_header_and_ends_the_session(server, context):
    page, username = _sign_in(context, server, "out")
    old = _cookies(context, server)[SESSION_COOKIE]
    sign_out = """async (header) => {
        const m = document.cookie.match(/(?:^|; )gridflow_csrf=([^;]*)/);
        const headers = header ? {'X-CSRF-Token': m[1]} : {};
        const r = await fetch('/api/v1/session', {method: 'DELETE', headers,
                                                  signal: AbortSignal.timeout(10000)});
        return {status: r.status, body: await r.json()};
    }"""
    # Without the header another site could sign the user out: refused, still signed in.
    refused = page.evaluate(sign_out, False)
    assert refused["status"] == 403, refused
    # Still signed in: another of Gridflow's pages, from which the user signs out.
    answer = page.goto(server.url + "/api/v1/me/tokens")
    assert answer is not None and answer.status == 200

    done = page.evaluate(sign_out, True)
    assert done["status"] == 200 and done["body"]["signed_out"] is True, done
    assert set(_cookies(context, server)) & {SESSION_COOKIE, CSRF_COOKIE} == set()
    assert page.evaluate("document.cookie") == ""
    # Back to the signed-in answer (it showed the CSRF value): the browser keeps no copy of it
    # (no-store) and asks again, and is refused.
    answer = page.go_back()
    assert page.url == server.url + AFTER_SIGNIN
    assert answer is not None and answer.status == 401
    assert "csrf_token" not in _shown_json(page)
    answer = page.goto(server.url + "/api/v1/me")
    assert answer is not None and answer.status == 401

    # A copy of the old cookie (kept by malware, or a second tab's jar) is no longer a session.
    context.add_cookies([{k: old[k] for k in ("name", "value", "domain", "path")}])
    answer = page.goto(server.url + "/api/v1/me")
    assert answer is not None and answer.status == 401
    assert "sign in" in json.dumps(_shown_json(page))
    assert _bearer_tokens(server, username) == []
