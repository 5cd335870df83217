"""The command center's pages and the board's own endpoints (gridflow_intake/board_api.py), in
process: the pages' headers and files, the live feed's scope, resumption and limit, and a case's
place on the map. The browser's view of them is tests/e2e/test_board_browser.py."""

from __future__ import annotations

import json
import re
import time

import pytest

from gridflow_intake import board_api
from gridflow_intake.board_api import STATIC, WEB, Streams, TimelineCursor
from tests.unit.test_intake_cases import _pump
from tests.unit.test_route_access import NOTHING, STREETLIGHT, City, _without, build_city

# -- the pages -------------------------------------------------------------------------------------


@pytest.fixture
def city(gridflow) -> City:
    return build_city(gridflow, outsiders=True)


def _header(answer, name: str) -> str:
    return {k.lower(): v for k, v in answer.headers.items()}.get(name.lower(), "")


@pytest.mark.parametrize("path", ["/", "/cases/GF-20260105-ANYTHING", "/cases/x?lang=en"])
def test_the_pages_are_html_under_a_strict_content_security_policy(city, path):
    answer = city.call("GET", path)
    assert answer.status == 200
    assert answer.content_type == "text/html; charset=utf-8"
    csp = _header(answer, "Content-Security-Policy")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert "unsafe" not in csp
    assert _header(answer, "X-Content-Type-Options") == "nosniff"
    assert _header(answer, "Cache-Control") == "no-cache"


def test_the_pages_have_no_inline_script_and_load_nothing_from_elsewhere():
    pages = sorted(WEB.glob("*.html"))
    # docs.html: the API reference (gridflow_intake/docs_api.py), under the same policy.
    assert {p.name for p in pages} == {"board.html", "case.html", "docs.html"}
    for page in pages:
        html = page.read_text(encoding="utf-8")
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
        assert scripts, page.name
        for attributes, content in scripts:
            assert re.search(r'\bsrc="/static/[\w.-]+\.js"', attributes), (page.name, attributes)
            assert content.strip() == "", page.name
        # No event handler attributes (the CSP would block them anyway), no inline style.
        assert not re.search(r"\son[a-z]+=", html), page.name
        assert not re.search(r"\sstyle=", html), page.name
        assert not re.search(r"(src|href)=\"(https?:)?//", html), page.name
    for asset in STATIC.iterdir():
        assert "http://" not in asset.read_text(encoding="utf-8").replace(
            "http://www.w3.org/2000/svg", ""
        ), asset.name
        assert "https://" not in asset.read_text(encoding="utf-8"), asset.name


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("gridflow.css", "text/css; charset=utf-8"),
        ("common.js", "text/javascript; charset=utf-8"),
        ("board.js", "text/javascript; charset=utf-8"),
        ("case.js", "text/javascript; charset=utf-8"),
    ],
)
def test_assets_are_served_with_their_type_and_kept_a_while(city, name, content_type):
    answer = city.call("GET", f"/static/{name}")
    assert answer.status == 200
    assert answer.content_type == content_type
    assert answer.body == (STATIC / name).read_bytes()
    assert _header(answer, "Cache-Control") == "public, max-age=300"
    assert _header(answer, "X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/static/../board.html",
        "/static/%2e%2e/board.html",
        "/static/..%2fboard_api.py",
        "/static/../../board_api.py",
        "/static//etc/passwd",
        "/static/common",
        "/static/nothing.js",
        "/static/",
        "/static/.",
    ],
)
def test_nothing_outside_the_assets_folder_is_served(city, path):
    answer = city.call("GET", path)
    assert answer.status == 404, (path, answer.status)
    assert answer.content_type == "application/json"
    assert "errors" in answer.body


def test_a_file_of_a_kind_not_served_is_a_404_even_in_the_folder(city, tmp_path, monkeypatch):
    folder = tmp_path / "static"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an asset")
    (folder / "ok.css").write_text("body {}")
    monkeypatch.setattr(board_api, "STATIC", folder)
    assert city.call("GET", "/static/notes.txt").status == 404
    assert city.call("GET", "/static/ok.css").status == 200


# -- the live feed ---------------------------------------------------------------------------------


@pytest.fixture
def quick_feed(monkeypatch):
    """A feed that looks every 50 ms and ends after 0.3 s (a browser would reconnect)."""
    monkeypatch.setattr(board_api, "STREAM_SECONDS", 0.3)
    monkeypatch.setattr(board_api, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(board_api, "_STREAMS", Streams(8))


def _feed(city: City, who: str, after: int | None = 0) -> tuple[list[dict], list[str]]:
    """The ``case`` events of one whole stream, and the ids it sent."""
    headers = dict(city.headers(who))
    if after is not None:
        headers["Last-Event-ID"] = str(after)
    answer = city.call("GET", "/api/v1/board/events", headers=headers)
    assert answer.status == 200, answer.body
    assert answer.content_type == "text/event-stream; charset=utf-8"
    assert _header(answer, "Cache-Control") == "no-store"
    text = b"".join(answer.body).decode("utf-8")
    events = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if lines.get("event") == "case":
            events.append(json.loads(lines["data"]))
    ids = re.findall(r"^id: (\d+)$", text, flags=re.M)
    assert text.rstrip().endswith("data: {}"), "the stream ends with its bye"
    return events, ids


def _elsewhere(city: City) -> str:
    """A streetlight in Qingyuan (五马街道), another street than the city's case."""
    answer = city.call(
        "POST", "/api/v1/reports", {**STREETLIGHT, "location": {"lat": 27.995, "lon": 120.556}}
    )
    assert answer.status == 201, answer.body
    _pump(city.gridflow)
    return answer.body["case_id"]


def test_the_feed_tells_each_caller_of_the_cases_it_may_read_only(city, quick_feed):
    other = _elsewhere(city)
    readers = [who for who in city.tokens if who != "channel_key"]
    seen = {who: {e["case_id"] for e in _feed(city, who)[0]} for who in readers}
    assert seen["command_center"] == seen["admin"] == {city.case_id, other}
    assert seen["street"] == seen["grid_worker"] == {city.case_id}
    # Both streetlights are urban management's (its users and its system).
    assert seen["department"] == seen["holder_key"] == {city.case_id, other}
    assert seen["other_street"] == {other}
    assert seen["other_department"] == seen["other_holder_key"] == set()
    # What an event says: the change and the case's state now, never a note's text.
    first = _feed(city, "command_center")[0]
    routed = next(e for e in first if e["case_id"] == city.case_id and e["kind"] == "routed")
    assert routed["status"] == "dispatched" and routed["colour"] == "green"
    assert routed["holder"] == "urban_management-330302104"
    assert set(routed) == {
        "case_id",
        "kind",
        "at",
        "status",
        "colour",
        "holder",
        "lead",
        "tier",
        "category",
        "area_code",
    }
    assert routed["at"].endswith("+08:00")


def test_the_feed_starts_now_and_resumes_after_the_last_id(city, quick_feed):
    # Without Last-Event-ID: only what happens from now on.
    assert _feed(city, "command_center", after=None)[0] == []
    events, ids = _feed(city, "command_center")
    assert events and ids
    last = int(ids[-1])
    # Resumed after the last id: nothing again; a new change: only it.
    assert _feed(city, "command_center", after=last)[0] == []
    answer = city.call(
        "POST",
        f"/api/v1/cases/{city.case_id}/updates",
        {"status": "accepted", "note": "已安排，联系 13900000001"},
        city.headers("holder_key"),
    )
    assert answer.status == 202, answer.body
    again, _ = _feed(city, "command_center", after=last)
    assert [(e["case_id"], e["kind"], e["status"]) for e in again] == [
        (city.case_id, "accepted", "accepted")
    ]
    assert "13900000001" not in json.dumps(again)


def test_a_colour_change_is_in_the_feed(city, quick_feed):
    _, ids = _feed(city, "street")
    last = int(ids[-1])
    view = city.admin("GET", f"/api/v1/cases/{city.case_id}").body
    # Move the city's clock a week on: the streetlight's clock runs out.
    city.gridflow.clock.set(city.gridflow.clock.now() + __import__("datetime").timedelta(days=7))
    with city.gridflow.runtimes["intake"].work() as work:
        work.emit("clock_advanced", {"now": city.gridflow.clock.now().isoformat()})
    _pump(city.gridflow)
    now = city.admin("GET", f"/api/v1/cases/{city.case_id}").body
    assert view["colour"] == "green" and now["colour"] in ("orange", "red"), now["colour"]
    events, _ = _feed(city, "street", after=last)
    warnings = [e for e in events if e["kind"] == "warning"]
    assert warnings and warnings[-1]["colour"] == now["colour"]


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "9" * 30, "0x10"])
def test_a_last_event_id_not_of_this_feed_is_refused(city, value):
    answer = city.call(
        "GET",
        "/api/v1/board/events",
        headers={**city.headers("command_center"), "Last-Event-ID": value},
    )
    assert answer.status == 400
    assert "Last-Event-ID" in answer.body["errors"]


def test_streams_beyond_the_limit_are_told_to_come_back(city, monkeypatch):
    monkeypatch.setattr(board_api, "_STREAMS", Streams(1))
    headers = city.headers("command_center")
    first = city.call("GET", "/api/v1/board/events", headers=headers)
    assert first.status == 200
    second = city.call("GET", "/api/v1/board/events", headers=headers)
    assert second.status == 503
    assert _header(second, "Retry-After") == str(board_api.RETRY_AFTER_SECONDS)
    assert "streams" in second.body["errors"]
    # The first one's client goes away (the server closes its body): its place is free again.
    first.body.close()
    third = city.call("GET", "/api/v1/board/events", headers=headers)
    assert third.status == 200
    third.body.close()


def test_the_stream_limit_is_the_operators_to_set(monkeypatch):
    monkeypatch.setenv(board_api.STREAMS_ENV, "7")
    assert board_api.stream_limit() == 7
    monkeypatch.delenv(board_api.STREAMS_ENV)
    assert board_api.stream_limit() == board_api.DEFAULT_STREAMS
    for bad in ("0", "many"):
        monkeypatch.setenv(board_api.STREAMS_ENV, bad)
        with pytest.raises(ValueError, match=board_api.STREAMS_ENV):
            board_api.stream_limit()


def test_the_cursor_waits_a_while_for_an_id_committed_late():
    cursor = TimelineCursor(after=10)
    now = time.monotonic()
    # 12 and 13 seen; 11 not yet (its transaction has not committed).
    assert cursor.take([12, 13], now) == [12, 13]
    assert cursor.after == 10
    # Read again from 10: 12 and 13 are not new; 11, once it commits, is.
    assert cursor.take([12, 13], now + 1) == []
    assert cursor.take([11, 12, 13], now + 2) == [11]
    assert cursor.after == 13 and cursor.gaps == {} and cursor.seen == set()
    # An id that never comes (rolled back) is given up after GAP_WAIT_SECONDS.
    assert cursor.take([15], now + 3) == [15]
    assert cursor.after == 13
    assert cursor.take([15], now + 3 + board_api.GAP_WAIT_SECONDS) == []
    assert cursor.after == 15
    # Far behind: the cursor waits for at most MAX_GAPS ids.
    far = TimelineCursor(after=0)
    far.take([5000], now)
    assert far.after == 5000 - board_api.MAX_GAPS and len(far.gaps) == board_api.MAX_GAPS - 1


# -- the case's place -----------------------------------------------------------------------------


def test_the_place_is_the_cases_grid_its_neighbours_and_its_point(city):
    answer = city.call(
        "GET", f"/api/v1/cases/{city.case_id}/place", headers=city.headers("grid_worker")
    )
    assert answer.status == 200, answer.body
    place = answer.body
    j = city.gridflow.store.active()[1]
    area = j.area(place["area"]["code"])
    view = city.admin("GET", f"/api/v1/cases/{city.case_id}").body
    assert place["area"]["code"] == view["area_code"] and area.level == "grid"
    assert place["point"] == {"lat": 28.05, "lon": 120.64}
    assert area.polygon.contains(place["point"]["lon"], place["point"]["lat"])
    ring = place["area"]["rings"][0][0]
    assert ring[0] == ring[-1] and len(ring) >= 4
    assert place["neighbours"], "a grid has neighbours"
    assert all(j.area(n["code"]).level == "grid" for n in place["neighbours"])
    assert place["area"]["code"] not in {n["code"] for n in place["neighbours"]}
    min_lon, min_lat, max_lon, max_lat = place["bbox"]
    for shape in [place["area"], *place["neighbours"]]:
        for lon, lat in shape["rings"][0][0]:
            assert min_lon <= lon <= max_lon and min_lat <= lat <= max_lat


def test_the_place_of_a_case_out_of_scope_is_no_case(city):
    headers = city.headers("other_grid_worker")
    theirs = city.call("GET", f"/api/v1/cases/{city.case_id}/place", headers=headers)
    none = city.call("GET", f"/api/v1/cases/{NOTHING['case_id']}/place", headers=headers)
    assert theirs.status == 404
    assert _without(theirs, city.case_id) == _without(none, NOTHING["case_id"])


def test_a_quiet_feed_sends_heartbeats(city, quick_feed, monkeypatch):
    monkeypatch.setattr(board_api, "HEARTBEAT_SECONDS", 0.1)
    # From now: nothing happens to any case while the stream is open.
    answer = city.call("GET", "/api/v1/board/events", headers=city.headers("command_center"))
    text = b"".join(answer.body).decode("utf-8")
    assert text.startswith("retry: ")
    assert "event: case" not in text
    assert len(re.findall(r"^: heartbeat \d+$", text, flags=re.M)) >= 2, text
