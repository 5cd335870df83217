"""The replay tool against a small in-memory fake of Gridflow's HTTP API, over real HTTP."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from gridflow_app import replay
from tests.conftest import shared_scenarios

CST = timezone(timedelta(hours=8))
START = datetime(2026, 3, 2, 9, 0, tzinfo=CST)


class FakeGridflow:
    """Just enough of the API to observe what replay sends and to answer it plausibly."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[dict] = []
        self.cases: dict[str, dict] = {}
        self.by_external_id: dict[tuple, str] = {}
        self.now: str | None = None
        self.real_clock = False
        self.jurisdiction_errors: list[str] | None = None
        # Seconds of real time during which a new case shows as `registered` before it is
        # `dispatched`, to mimic asynchronous routing.
        self.dispatch_delay = 0.0
        # Fields every new case view starts with.
        self.template = {
            "status": "dispatched",
            "category": "event.medical_waste",
            "tier": "street",
            "handler": "environment-330302104",
            "lead": "environment",
            "assisting": ["police", "health"],
            "colour": "green",
            "escalations": 0,
            "due": "2026-03-05T17:30:00+08:00",
            "pending": None,
            "extensions": 0,
            "comments": 0,
        }
        self.urls = Map(
            [
                Rule("/api/v1/admin/reset", methods=["POST"], endpoint="reset"),
                Rule("/api/v1/admin/jurisdiction", methods=["PUT"], endpoint="jurisdiction"),
                Rule("/api/v1/admin/clock", methods=["PUT"], endpoint="clock"),
                Rule("/api/v1/reports", methods=["POST"], endpoint="report"),
                Rule("/api/v1/cases/<case_id>", methods=["GET"], endpoint="case"),
                Rule("/api/v1/cases/<case_id>/updates", methods=["POST"], endpoint="update"),
                Rule("/api/v1/cases/<case_id>/verification", methods=["POST"], endpoint="verify"),
                Rule("/api/v1/cases/<case_id>/evaluation", methods=["POST"], endpoint="evaluate"),
                Rule("/api/v1/cases/<case_id>/orders", methods=["POST"], endpoint="order"),
            ]
        )

    def __call__(self, environ, start_response):
        return Request.application(self.handle)(environ, start_response)

    def handle(self, request: Request) -> Response:
        adapter = self.urls.bind_to_environ(request.environ)
        endpoint, args = adapter.match()
        body = request.get_json(silent=True) if request.data else None
        with self.lock:
            if endpoint != "case":  # polling GETs would make the call log depend on timing
                self.calls.append(
                    {
                        "method": request.method,
                        "path": request.path,
                        "body": body,
                        "auth": request.headers.get("Authorization"),
                        "content_type": request.headers.get("Content-Type"),
                    }
                )
            status, payload = getattr(self, "on_" + endpoint)(body, **args)
        return Response(json.dumps(payload), status=status, mimetype="application/json")

    def on_reset(self, body):
        if self.real_clock:
            return 409, {"errors": ["the clock is real"]}
        self.cases.clear()
        self.by_external_id.clear()
        self.now = body["now"]
        return 200, {}

    def on_jurisdiction(self, body):
        if self.jurisdiction_errors:
            return 422, {"errors": self.jurisdiction_errors}
        return 200, {"version": 1}

    def on_clock(self, body):
        self.now = body["now"]
        return 200, {"now": self.now}

    def on_report(self, body):
        if not body.get("description"):
            return 422, {"errors": {"description": "required"}}
        key = (body.get("channel"), body.get("external_id"))
        if body.get("external_id") and key in self.by_external_id:
            case = self.cases[self.by_external_id[key]]
            case["reporters"] += 1
            return 200, {"case_id": case["id"]}
        case_id = f"C{len(self.cases) + 1}"
        self.cases[case_id] = dict(self.template, id=case_id, reporters=1, created=time.monotonic())
        self.by_external_id[key] = case_id
        return 201, {"case_id": case_id}

    def on_case(self, body, case_id):
        case = self.cases.get(case_id)
        if case is None:
            return 404, {"errors": ["no such case"]}
        view = {k: v for k, v in case.items() if k != "created"}
        if time.monotonic() - case["created"] < self.dispatch_delay:
            view["status"] = "registered"
        return 200, view

    def on_update(self, body, case_id):
        case = self.cases.get(case_id)
        if case is None:
            return 404, {"errors": ["no such case"]}
        if body["status"] == "extension_requested":
            case["pending"] = "extension"
            case["asked_due"] = body["due"]
            return 202, {}
        if body["status"] not in ("accepted", "in_progress", "resolved"):
            return 422, {"errors": {"status": "not allowed here"}}
        case["status"] = body["status"]
        if body["status"] == "resolved":
            case["colour"] = None
        return 200, {}

    def on_verify(self, body, case_id):
        case = self.cases[case_id]
        case["status"] = "closed" if body["passed"] else "dispatched"
        return 200, {}

    def on_evaluate(self, body, case_id):
        self.cases[case_id]["satisfaction"] = body["satisfaction"]
        return 200, {}

    def on_order(self, body, case_id):
        case = self.cases[case_id]
        if body["kind"] == "approve" and case.get("pending") == "extension":
            case["pending"] = None
            case["extensions"] += 1
            # Shown in UTC, as another deployment might: the same instant as the file's +08:00.
            asked = datetime.fromisoformat(case.pop("asked_due"))
            case["due"] = asked.astimezone(UTC).isoformat().replace("+00:00", "Z")
        elif body["kind"] == "comment":
            case["comments"] += 1
        elif body["kind"] == "assign":
            case["handler"] = body["unit"]
        else:
            return 409, {"errors": {"kind": f"nothing to {body['kind']}"}}
        return 200, {}

    def clock_moves(self) -> list[datetime]:
        return [
            datetime.fromisoformat(c["body"]["now"])
            for c in self.calls
            if c["path"] == "/api/v1/admin/clock"
        ]


@pytest.fixture
def fake():
    server_fake = FakeGridflow()
    server = make_server("127.0.0.1", 0, server_fake, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    server_fake.url = f"http://127.0.0.1:{server.server_port}"
    yield server_fake
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for name in ("GRIDFLOW_ADMIN_TOKEN", "GRIDFLOW_URL", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)


CSV_FILES = {
    "areas.csv": "code,name,level,parent_code,polygon_wkt\n330302,鹿城区,district,,\n",
    "departments.csv": "code,name_zh,name_en\nhealth,卫健局,Health\n",
}


def write_scenario(tmp_path: Path, body: str, name: str = "demo") -> Path:
    folder = tmp_path / "fixtures" / "city"
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, text in CSV_FILES.items():
        (folder / file_name).write_text(text, encoding="utf-8")
    (folder / "README.md").write_text("not a table", encoding="utf-8")
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir(exist_ok=True)
    path = scenarios / f"{name}.yaml"
    header = (
        'name: test\njurisdiction: ../fixtures/city\nstart: "2026-03-02T09:00:00+08:00"\nsteps:\n'
    )
    path.write_text(header + body, encoding="utf-8")
    return path


REPORT = """\
  - at: "{at}"
    report:
      channel: grid_app
      external_id: {ext}
      description: 医疗废弃物
      location: {{lat: 28.055, lon: 120.637}}
    as: {alias}
"""


def report(alias: str, ext: str, at: str = "+0m", status: str | None = None) -> str:
    text = REPORT.format(at=at, ext=ext, alias=alias)
    return text + (f"    expect_status: {status}\n" if status else "")


def run(path_or_paths, fake, timeout: float = 1.0) -> tuple[int, list[str]]:
    paths = path_or_paths if isinstance(path_or_paths, list) else [path_or_paths]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = replay.main([str(p) for p in paths] + ["--url", fake.url, "--timeout", str(timeout)])
    return code, out.getvalue().splitlines()


# ---------------------------------------------------------------------------------------------
# Time


def test_offsets():
    assert replay.parse_offset("+1d2h") == timedelta(hours=26)
    assert replay.parse_offset("+40m") == timedelta(minutes=40)
    assert replay.parse_offset("+0m") == timedelta(0)
    assert replay.parse_offset("+3d1h") == timedelta(days=3, hours=1)
    assert replay.parse_offset("+1d2h30m") == timedelta(hours=26, minutes=30)
    for bad in ("+", "1h", "+2h1d", "+1x", "+1.5h", "+1d+2h"):
        with pytest.raises(replay.ScenarioError):
            replay.parse_offset(bad)


def test_resolve_at_offsets_and_instants():
    assert replay.resolve_at("+1d2h", START) == START + timedelta(hours=26)
    assert replay.resolve_at("+40m", START) == datetime(2026, 3, 2, 9, 40, tzinfo=CST)
    quoted = replay.resolve_at("2026-05-11T17:20:00+08:00", START)
    assert quoted == datetime(2026, 5, 11, 9, 20, tzinfo=UTC)
    assert quoted.isoformat() == "2026-05-11T17:20:00+08:00"
    # Unquoted in YAML, the same instant arrives as a datetime.
    unquoted = yaml.safe_load("at: 2026-05-11T17:20:00+08:00")["at"]
    assert isinstance(unquoted, datetime)
    assert replay.resolve_at(unquoted, START) == quoted
    assert replay.resolve_at("2026-05-11T09:20:00Z", START) == quoted
    # A local time without offset is the scenario's local time.
    assert replay.resolve_at("2026-05-11T17:20:00", START) == quoted
    with pytest.raises(replay.ScenarioError):
        replay.resolve_at("tomorrow", START)


# ---------------------------------------------------------------------------------------------
# Whole runs


def test_setup_sequence_clock_moves_and_passes(fake, tmp_path):
    steps = (
        report("waste", "w-1", status=201)
        + report("again", "w-1", status=200)
        + """\
  - at: "+0m"
    expect:
      case: waste
      status: dispatched
      tier: street
      lead: environment
      assisting: [health, police]
      colour: green
      reporters: 2
  - at: "+0m"
    expect: {case: again, same_case_as: waste}
  - at: "+40m"
    update: {case: waste, from: environment, status: accepted, note: 已受理}
  - at: "+1d2h"
    update: {case: waste, from: environment, status: resolved, note: 已处置}
  - at: "+1d2h"
    expect: {case: waste, status: resolved, colour: null}
  - at: 2026-03-04T12:00:00+08:00
    verify: {case: waste, passed: true, note: 已核查}
  - at: "2026-03-04T05:00:00Z"
    evaluate: {case: waste, satisfaction: 5}
  - at: "2026-03-04T13:00:00+08:00"
    expect: {case: waste, status: closed}
"""
    )
    path = write_scenario(tmp_path, steps)
    code, lines = run(path, fake)

    assert code == 0, lines
    assert lines[-1] == "12 passed, 0 failed"
    assert not [line for line in lines if line.startswith("FAIL")]
    assert "PASS demo step 1 (+0m): expect_status = 201" in lines
    assert "PASS demo step 2 (+0m): expect_status = 200" in lines
    assert "PASS demo step 3 (+0m): colour = green" in lines
    assert "PASS demo step 4 (+0m): same_case_as = waste" in lines
    assert "PASS demo step 7 (+1d2h): colour = null" in lines

    first = fake.calls[:3]
    assert [(c["method"], c["path"]) for c in first] == [
        ("POST", "/api/v1/admin/reset"),
        ("PUT", "/api/v1/admin/jurisdiction"),
        ("PUT", "/api/v1/admin/clock"),
    ]
    assert datetime.fromisoformat(first[0]["body"]["now"]) == START
    assert first[1]["body"] == {"files": CSV_FILES}
    assert all(c["content_type"] == "application/json" for c in fake.calls if c["body"])
    # One move per distinct instant, none for steps at the current time.
    assert fake.clock_moves() == [
        START,
        START + timedelta(minutes=40),
        START + timedelta(hours=26),
        datetime(2026, 3, 4, 12, 0, tzinfo=CST),
        datetime(2026, 3, 4, 13, 0, tzinfo=CST),
    ]
    assert fake.clock_moves()[1].utcoffset() == timedelta(hours=8)

    update = next(c for c in fake.calls if c["path"].endswith("/updates"))
    assert update["body"] == {"from": "environment", "status": "accepted", "note": "已受理"}
    verify = next(c for c in fake.calls if c["path"].endswith("/verification"))
    assert verify["body"] == {"passed": True, "note": "已核查"}
    assert fake.cases["C1"]["satisfaction"] == 5


def test_expect_status_4xx_and_wrong_status(fake, tmp_path):
    steps = """\
  - at: "+0m"
    report: {channel: web, location: {grid_code: "330302001001003"}}
    expect_status: "4xx"
  - at: "+0m"
    report: {channel: web, location: {grid_code: "330302001001003"}}
    as: nothing
    expect_status: 201
  - at: "+0m"
    expect: {case: nothing, status: dispatched}
"""
    code, lines = run(write_scenario(tmp_path, steps), fake)
    assert code == 1
    assert lines[0] == "PASS demo step 1 (+0m): expect_status = 422"
    assert lines[1].startswith("FAIL demo step 2 (+0m): expect_status expected 201, got HTTP 422")
    assert "description" in lines[1]
    # A rejected report names no case: referring to it fails, it does not crash.
    assert lines[2].startswith("FAIL demo step 3 (+0m): case nothing is not a known case name")
    assert lines[-1] == "1 passed, 2 failed"


def test_polls_until_the_case_changes(fake, tmp_path):
    fake.dispatch_delay = 0.4
    steps = (
        report("waste", "w-1")
        + """\
  - at: "+0m"
    expect: {case: waste, status: dispatched, tier: street}
"""
    )
    started = time.monotonic()
    code, lines = run(write_scenario(tmp_path, steps), fake, timeout=3)
    assert time.monotonic() - started >= 0.4
    assert code == 0, lines
    assert lines == [
        "PASS demo step 2 (+0m): status = dispatched",
        "PASS demo step 2 (+0m): tier = street",
        "2 passed, 0 failed",
    ]


def test_mismatch_fails_with_expected_and_last_value(fake, tmp_path):
    steps = (
        report("waste", "w-1")
        + """\
  - at: "+10m"
    expect: {case: waste, tier: district, lead: environment, colour: null, escalations: 1}
"""
    )
    started = time.monotonic()
    code, lines = run(write_scenario(tmp_path, steps), fake, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert code == 1
    assert lines == [
        "FAIL demo step 2 (+10m): tier expected district, got street",
        "PASS demo step 2 (+10m): lead = environment",
        "FAIL demo step 2 (+10m): colour expected null, got green",
        "FAIL demo step 2 (+10m): escalations expected 1, got 0",
        "1 passed, 3 failed",
    ]


def test_assisting_is_a_set(fake, tmp_path):
    steps = (
        report("waste", "w-1")
        + """\
  - at: "+0m"
    expect: {case: waste, assisting: [health, police]}
  - at: "+0m"
    expect: {case: waste, assisting: [health]}
"""
    )
    code, lines = run(write_scenario(tmp_path, steps), fake, timeout=0.3)
    assert lines[0] == "PASS demo step 2 (+0m): assisting = [health, police]"
    assert lines[1] == "FAIL demo step 3 (+0m): assisting expected [health], got [health, police]"
    assert code == 1


def test_same_and_not_same_case(fake, tmp_path):
    steps = (
        report("a", "x-1")
        + report("b", "x-2")
        + report("a_again", "x-1")
        + """\
  - at: "+0m"
    expect: {case: a, not_same_case_as: b}
  - at: "+0m"
    expect: {case: a_again, same_case_as: a}
  - at: "+0m"
    expect: {case: b, same_case_as: a}
  - at: "+0m"
    expect: {case: a_again, not_same_case_as: a}
  - at: "+0m"
    expect: {case: a, same_case_as: ghost}
"""
    )
    code, lines = run(write_scenario(tmp_path, steps), fake)
    assert lines[:-1] == [
        "PASS demo step 4 (+0m): not_same_case_as = b",
        "PASS demo step 5 (+0m): same_case_as = a",
        "FAIL demo step 6 (+0m): same_case_as expected a, got b is case C2 and a is case C1",
        "FAIL demo step 7 (+0m): not_same_case_as expected a, got a_again is case C1 and a is case C1",
        "FAIL demo step 8 (+0m): same_case_as expected ghost, got no case known by that name",
    ]
    assert lines[-1] == "2 passed, 3 failed"
    assert code == 1


def test_refused_update_is_a_fail_line(fake, tmp_path):
    steps = (
        report("waste", "w-1")
        + """\
  - at: "+1h"
    update: {case: waste, from: environment, status: beyond_authority, note: 超出权限}
  - at: "+1h"
    update: {case: ghost, from: environment, status: accepted}
"""
    )
    code, lines = run(write_scenario(tmp_path, steps), fake)
    assert lines[0].startswith("FAIL demo step 2 (+1h): update refused: HTTP 422")
    assert "not allowed here" in lines[0]
    assert lines[1].startswith("FAIL demo step 3 (+1h): case ghost is not a known case name")
    assert lines[-1] == "0 passed, 2 failed"
    assert code == 1


def test_real_clock_stops_the_file_and_the_next_file_still_runs(fake, tmp_path):
    first = write_scenario(tmp_path, report("waste", "w-1", status=201), name="one")
    second = write_scenario(tmp_path, report("waste", "w-1", status=201), name="two")
    fake.real_clock = True
    code, lines = run([first, second], fake)
    assert code == 1
    assert lines[0].startswith("FAIL one setup: reset refused (HTTP 409)")
    assert "GRIDFLOW_CLOCK=simulated" in lines[0]
    assert [c["path"] for c in fake.calls] == ["/api/v1/admin/reset"] * 2
    assert lines[-1] == "0 passed, 2 failed"


def test_rejected_jurisdiction_prints_the_errors(fake, tmp_path):
    fake.jurisdiction_errors = ["units.csv: missing", "areas.csv line 3: bad polygon"]
    code, lines = run(write_scenario(tmp_path, report("waste", "w-1", status=201)), fake)
    assert code == 1
    assert lines[0].startswith("FAIL demo setup: jurisdiction ")
    assert "(HTTP 422)" in lines[0]
    assert "units.csv: missing" in lines[1]
    assert "areas.csv line 3: bad polygon" in lines[2]
    assert not [c for c in fake.calls if c["path"] == "/api/v1/reports"]
    assert lines[-1] == "0 passed, 1 failed"


def test_backwards_step_is_a_scenario_error(fake, tmp_path):
    steps = report("waste", "w-1", at="+1h") + report("other", "w-2", at="+30m")
    code, lines = run(write_scenario(tmp_path, steps), fake)
    assert code == 1
    assert lines[0] == "FAIL demo: scenario not run:"
    assert "step 2 (+30m)" in lines[1] and "backwards" in lines[1]
    assert fake.calls == []
    assert lines[-1] == "0 passed, 1 failed"


def test_admin_token_is_sent(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDFLOW_ADMIN_TOKEN", "s3cret")
    code, _ = run(write_scenario(tmp_path, report("waste", "w-1", status=201)), fake)
    assert code == 0
    assert {c["auth"] for c in fake.calls} == {"Bearer s3cret"}


def test_server_down_is_a_clear_fail(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = write_scenario(tmp_path, report("waste", "w-1", status=201))
    out = io.StringIO()
    passed, failed = replay.run_files([path], f"http://127.0.0.1:{port}", out=out)
    assert (passed, failed) == (0, 1)
    assert out.getvalue().startswith(f"FAIL demo: cannot reach Gridflow at http://127.0.0.1:{port}")


def test_url_from_environment(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDFLOW_URL", fake.url)
    path = write_scenario(tmp_path, report("waste", "w-1", status=201))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert replay.main([str(path)]) == 0
    assert out.getvalue().splitlines()[-1] == "1 passed, 0 failed"


def test_orders_and_requests_are_sent_and_their_fields_checked(fake, tmp_path):
    steps = (
        report("lights", "l-1")
        + """\
  - at: "+0m"
    expect: {case: lights, due: "2026-03-05T09:30:00Z", pending: null, extensions: 0}
  - at: "+30m"
    order: {case: lights, kind: assign, unit: urban_management-330302001, category: component.streetlight, reason: 经研判}
  - at: "+2h"
    update: {case: lights, from: urban_management, status: extension_requested, due: "2026-03-10T17:30:00+08:00", note: 等配件}
  - at: "+2h"
    expect: {case: lights, pending: extension, extensions: 0}
  - at: "+3h"
    order: {case: lights, kind: approve, reason: 同意延期}
  - at: "+3h"
    order: {case: lights, kind: comment, reason: 请尽快}
  - at: "+3h"
    expect: {case: lights, pending: null, due: 2026-03-10T17:30:00+08:00, extensions: 1, comments: 1, handler: urban_management-330302001}
  - at: "+3h"
    expect: {case: lights, due: "2026-03-10T17:31:00+08:00"}
  - at: "+4h"
    order: {case: lights, kind: release}
"""
    )
    code, lines = run(write_scenario(tmp_path, steps), fake, timeout=0.3)
    assert lines[:4] == [
        "PASS demo step 2 (+0m): due = 2026-03-05T09:30:00Z",
        "PASS demo step 2 (+0m): pending = null",
        "PASS demo step 2 (+0m): extensions = 0",
        "PASS demo step 5 (+2h): pending = extension",
    ]
    assert "PASS demo step 8 (+3h): due = 2026-03-10T17:30:00+08:00" in lines
    assert "PASS demo step 8 (+3h): comments = 1" in lines
    assert (
        "FAIL demo step 9 (+3h): due expected 2026-03-10T17:31:00+08:00, got 2026-03-10T09:30:00Z"
    ) in lines
    assert lines[-2].startswith("FAIL demo step 10 (+4h): order refused: HTTP 409")
    assert lines[-1] == "10 passed, 2 failed"
    assert code == 1

    sent = [
        (c["path"], c["body"]) for c in fake.calls if c["path"].endswith(("/orders", "/updates"))
    ]
    assert sent == [
        (
            "/api/v1/cases/C1/orders",
            {
                "kind": "assign",
                "unit": "urban_management-330302001",
                "category": "component.streetlight",
                "reason": "经研判",
            },
        ),
        (
            "/api/v1/cases/C1/updates",
            {
                "from": "urban_management",
                "status": "extension_requested",
                "due": "2026-03-10T17:30:00+08:00",
                "note": "等配件",
            },
        ),
        ("/api/v1/cases/C1/orders", {"kind": "approve", "reason": "同意延期"}),
        ("/api/v1/cases/C1/orders", {"kind": "comment", "reason": "请尽快"}),
        ("/api/v1/cases/C1/orders", {"kind": "release"}),
    ]


@pytest.mark.parametrize(
    ("step", "complaint"),
    [
        ("order: {case: x, kind: promote}", "order `kind` must be one of assign"),
        ("order: {case: x, kind: hold}", "an order of kind hold needs reason"),
        ("order: {case: x, kind: reject}", "an order of kind reject needs reason"),
        ("order: {case: x, kind: assign, reason: r}", "an order of kind assign needs unit"),
        ("order: {case: x, kind: comment, reason: r, urgent: true}", "unknown order keys urgent"),
        ("update: {case: x, from: a, status: extension_requested}", "needs `due`"),
        ("update: {case: x, from: a, status: extension_requested, due: soon}", "bad instant"),
    ],
)
def test_malformed_orders_and_requests_are_scenario_errors(fake, tmp_path, step, complaint):
    path = write_scenario(tmp_path, f'  - at: "+1h"\n    {step}\n')
    code, lines = run(path, fake)
    assert code == 1
    assert lines[0] == "FAIL demo: scenario not run:"
    assert complaint in lines[1], lines
    assert fake.calls == []


def test_shared_scenarios_load():
    """Every shared scenario parses, new step kinds included. Found through GRIDFLOW_SHARED or
    `shared/` beside the repository; missing, this fails (it does not skip)."""
    files = shared_scenarios()
    assert {p.stem for p in files} >= {"06_command_center_orders", "07_extension_for_parts"}
    kinds = set()
    for path in files:
        scenario = replay.load_scenario(path)
        assert scenario.jurisdiction.is_dir(), f"{path}: {scenario.jurisdiction}"
        assert scenario.steps
        kinds |= {step.action for step in scenario.steps}
    assert kinds == set(replay.ACTIONS)


def test_shared_scenarios_missing_is_an_error(monkeypatch, tmp_path):
    from tests import conftest

    monkeypatch.setattr(conftest, "SHARED", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="GRIDFLOW_SHARED"):
        conftest.shared_scenarios()


def test_a_field_the_case_view_lacks_fails_without_waiting(fake, tmp_path):
    steps = (
        report("waste", "w-1")
        + """\
  - at: "+0m"
    expect: {case: waste, tier: street, orders: 2}
"""
    )
    started = time.monotonic()
    code, lines = run(write_scenario(tmp_path, steps), fake, timeout=10)
    assert time.monotonic() - started < 5
    assert lines == [
        "PASS demo step 2 (+0m): tier = street",
        "FAIL demo step 2 (+0m): orders expected 2, got (no such field in the case view)",
        "1 passed, 1 failed",
    ]
    assert code == 1


def test_a_merge_order_names_the_other_case_by_its_scenario_name(fake, tmp_path):
    steps = (
        report("first", "m-1")
        + report("second", "m-2")
        + """\
  - at: "+10m"
    order: {case: second, kind: merge, into: first, reason: 同一事项}
  - at: "+20m"
    order: {case: second, kind: merge, into: nobody}
"""
    )
    code, lines = run(write_scenario(tmp_path, steps), fake, timeout=0.3)
    sent = [(c["path"], c["body"]) for c in fake.calls if c["path"].endswith("/orders")]
    assert sent == [
        ("/api/v1/cases/C2/orders", {"kind": "merge", "into": "C1", "reason": "同一事项"})
    ]
    assert any("case nobody is not a known case name" in line for line in lines), lines
    assert code == 1
