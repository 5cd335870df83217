"""The reporter's link (issue 6, point 6): a report's answer carries a progress link whose token
lets the reporter follow the case and evaluate it once, and shows nobody's personal data.

In process through ``IntakeApi`` on the embedded default (the bus pumped by hand, so nothing waits
on a thread), as an anonymous web reporter, a department's credential and an admin would call it;
the last tests run ``gridflow run`` itself and read its log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import socket
import subprocess
import threading
import time

import httpx
import pytest
import sqlalchemy as sa

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v
from gridflow_common.logging import install_record_masking, mask_personal_numbers
from gridflow_intake import handlers as h
from gridflow_intake import models
from gridflow_intake import progress as pg
from gridflow_intake.identity import token_hash
from tests.conftest import GRIDFLOW, free_port, wait_http
from tests.intake_messages import colour_changed

REPORTS = "/api/v1/reports"
TENGQIAO_POINT = {"lat": 28.05, "lon": 120.635}  # inside grid 330302104001001
ENVIRONMENT_STATION = "environment-330302104"  # holds medical waste reported there
ZHANG = {"name": "张三", "phone": "13900000001"}
LI = {"name": "李四", "phone": "13800000002"}
# Every key of the progress view: anything else appearing in it is a leak until decided otherwise.
VIEW_KEYS = {
    "case_id",
    "status",
    "status_name",
    "category",
    "category_name",
    "reported_at",
    "registered_at",
    "closed_at",
    "milestones",
    "can_evaluate",
    "evaluation",
}


def _report(**changes) -> dict:
    report = {
        "channel": "web",
        "description": "楼下堆了大量医疗废弃物",
        "category": "event.medical_waste",
        "location": dict(TENGQIAO_POINT),
    }
    report.update(changes)
    return report


def _json(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _path(url: str) -> str:
    return url[url.index(pg.PROGRESS_PATH) :]


class Flow:
    """One embedded Gridflow, its API, and every message its services published (as the bus
    carried them), for the checks that no token travelled anywhere."""

    def __init__(self, gridflow):
        self.g = gridflow
        self.api = gridflow.api()
        self.published: list[str] = []

    def post(self, path: str, body: dict, headers: dict | None = None):
        return self.api.handle("POST", path, _json(body), headers or {})

    def get(self, path: str, headers: dict | None = None):
        return self.api.handle("GET", path, b"", headers or {})

    def report(self, **changes):
        """Anonymously on the web channel; on another channel with the admin's token (it needs a
        key or a staff member: the command center's operators report on any channel)."""
        report = _report(**changes)
        headers = {} if report["channel"] == "web" else _bearer(self.g.admin_token)
        answer = self.post(REPORTS, report, headers)
        assert answer.status in (200, 201), answer.body
        return answer

    def pump(self, limit: int = 200) -> None:
        for _ in range(limit):
            try:
                consumer, method, message = self.g.bus.deliveries.get_nowait()
            except queue.Empty:
                return
            self.published.append(json.dumps(message, ensure_ascii=False))
            handler = self.g.definitions[consumer].handlers[method]
            assert self.g.runtimes[consumer].consume(method, message, handler) == "done"
        raise AssertionError(f"the bus did not drain within {limit} deliveries")

    def holder_key(self, holder: str) -> str:
        answer = self.post("/api/v1/admin/keys", {"holder": holder}, _bearer(self.g.admin_token))
        assert answer.status == 201, answer.body
        return answer.body["token"]

    def update(self, case_id: str, key: str, status: str, note: str | None = None) -> None:
        answer = self.post(
            f"/api/v1/cases/{case_id}/updates", {"status": status, "note": note}, _bearer(key)
        )
        assert answer.status == 202, answer.body

    def verify(self, case_id: str, note: str | None = None) -> None:
        answer = self.post(
            f"/api/v1/cases/{case_id}/verification",
            {"passed": True, "note": note},
            _bearer(self.g.admin_token),
        )
        assert answer.status == 200, answer.body

    def close(self, case_id: str) -> None:
        key = self.holder_key(ENVIRONMENT_STATION)
        self.update(case_id, key, v.RESOLVED)
        self.verify(case_id)

    def progress(self, url: str) -> dict:
        answer = self.get(_path(url))
        assert answer.status == 200, answer.body
        assert answer.headers["Cache-Control"] == "no-store"
        return answer.body

    def evaluate(self, url: str, body: dict):
        return self.post(_path(url) + "/evaluation", body)

    def staff_view(self, case_id: str) -> dict:
        answer = self.get(f"/api/v1/cases/{case_id}", _bearer(self.g.admin_token))
        assert answer.status == 200, answer.body
        return answer.body

    def every_stored_value(self) -> str:
        """Every row of every table of the embedded default, as text."""
        rows = []
        with self.g.engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')).all():
                    rows.append(f"{table}: {tuple(row)}")
        return "\n".join(rows)


@pytest.fixture
def flow(gridflow):
    return Flow(gridflow)


def _milestones(view: dict) -> list[str]:
    return [m["kind"] for m in view["milestones"]]


# ------------------------------------------------------------------------ the link follows the case


def test_the_link_shows_the_case_from_registration_through_dispatch_to_its_close(flow):
    answer = flow.report(external_id="web-1", reporter=ZHANG)
    assert answer.status == 201
    url = answer.body["progress_url"]
    assert url.startswith("http://localhost/api/v1/progress/gfr_")
    token = url.rsplit("/", 1)[1]
    assert pg.TOKEN_RE.fullmatch(token)
    case_id = answer.body["case_id"]

    view = flow.progress(url)
    assert set(view) == VIEW_KEYS
    assert (view["case_id"], view["status"], view["status_name"]) == (
        case_id,
        v.REGISTERED,
        "已立案",
    )
    assert (view["category"], view["category_name"]) == (
        "event.medical_waste",
        "医疗废弃物违规堆放",
    )
    assert _milestones(view) == ["registered"]
    assert view["can_evaluate"] is False and view["evaluation"] is None

    flow.pump()
    view = flow.progress(url)
    unit = flow.g.store.active()[1].unit(ENVIRONMENT_STATION).name
    assert (view["status"], view["status_name"]) == (v.DISPATCHED, "已派遣")
    assert view["milestones"][-1] == {
        "at": view["registered_at"],
        "kind": "dispatched",
        "name": f"已派遣至{unit}",
    }

    # The city's internal life of the case: a holder's note naming the reporter, a red warning.
    key = flow.holder_key(ENVIRONMENT_STATION)
    flow.update(case_id, key, v.ACCEPTED, note=f"已电话联系{ZHANG['name']}{ZHANG['phone']}")
    red = colour_changed(
        case_id, f"{case_id}-1", v.RED, dt.datetime(2026, 1, 6, 9, 0, tzinfo=dt.timezone.utc)
    )
    colours = h.HANDLERS["on_case_colour_changed"]
    assert flow.g.runtimes[c.INTAKE].consume("on_case_colour_changed", red, colours) == "done"
    flow.update(case_id, key, v.RESOLVED, note="内部备注：已清运，处置人员王五")
    view = flow.progress(url)
    assert (view["status"], view["status_name"]) == (v.RESOLVED, "已处置待核查")
    assert _milestones(view) == ["registered", "dispatched", "accepted", "resolved"]
    assert view["can_evaluate"] is False

    flow.verify(case_id, note="核查人员赵六现场确认")
    view = flow.progress(url)
    assert (view["status"], view["status_name"]) == (v.CLOSED, "已结案")
    assert _milestones(view) == ["registered", "dispatched", "accepted", "resolved", "closed"]
    assert view["closed_at"] is not None
    instants = [view["registered_at"], view["closed_at"], *(m["at"] for m in view["milestones"])]
    assert {dt.datetime.fromisoformat(i).utcoffset() for i in instants} == {dt.timedelta(hours=8)}
    assert view["can_evaluate"] is True
    shown = json.dumps(view, ensure_ascii=False)
    for private in (
        "王五",
        "赵六",
        "备注",
        ZHANG["name"],
        ZHANG["phone"],
        "colour",
        '"red"',
        "红色",
        "预警",
    ):
        assert private not in shown, private
    # The staff's view of the same case has all of it: the link left it out, it was there.
    staff = json.dumps(flow.staff_view(case_id), ensure_ascii=False)
    assert "王五" in staff and "赵六" in staff and '"red"' in staff


def test_a_report_that_joins_an_open_case_gets_a_link_of_its_own(flow):
    first = flow.report(reporter=ZHANG)
    flow.pump()
    second = flow.report(reporter=LI, description="又看到这里有医疗垃圾")
    assert (second.status, second.body["outcome"]) == (200, v.OUTCOME_JOINED)
    assert second.body["case_id"] == first.body["case_id"]
    assert second.body["progress_url"] != first.body["progress_url"]
    assert flow.progress(second.body["progress_url"])["case_id"] == first.body["case_id"]


# ------------------------------------------------------------------- nobody's personal data in it


def test_two_reporters_of_one_case_see_the_same_road_and_nobodys_name_or_phone(flow):
    first = flow.report(
        reporter=ZHANG, description=f"我是{ZHANG['name']}，电话{ZHANG['phone']}，楼下有医疗垃圾"
    )
    flow.pump()
    flow.g.clock.set(flow.g.clock.now() + dt.timedelta(minutes=30))
    second = flow.report(reporter=LI, description=f"{LI['name']}反映：医疗垃圾没人管")
    assert second.body["outcome"] == v.OUTCOME_JOINED
    mine, theirs = (flow.progress(a.body["progress_url"]) for a in (first, second))

    for view in (mine, theirs):
        assert set(view) == VIEW_KEYS
        shown = json.dumps(view, ensure_ascii=False)
        for person in (ZHANG, LI):
            assert person["name"] not in shown
            assert (
                person["phone"] not in shown and mask_personal_numbers(person["phone"]) not in shown
            )
        assert "医疗垃圾" not in shown  # the reports' own words (the first holds a phone)
        assert "report_joined" not in shown and "合并" not in shown
    # Nothing tells the two apart, or says there are two, but when each reported.
    assert mine["reported_at"] != theirs["reported_at"]
    assert {**mine, "reported_at": None} == {**theirs, "reported_at": None}


# ---------------------------------------------------------------------------- evaluation, once


def test_the_reporter_evaluates_a_closed_case_once_and_the_timeline_says_it_was_the_reporter(flow):
    first = flow.report(reporter=ZHANG)
    flow.pump()
    second = flow.report(reporter=LI)
    case_id = first.body["case_id"]
    flow.close(case_id)

    taken = flow.evaluate(first.body["progress_url"], {"satisfaction": 5, "note": "处理很快"})
    assert taken.status == 200, taken.body
    assert taken.body == {"case_id": case_id, "satisfaction": 5}
    again = flow.evaluate(first.body["progress_url"], {"satisfaction": 1})
    other = flow.evaluate(second.body["progress_url"], {"satisfaction": 2})
    staff = flow.post(
        f"/api/v1/cases/{case_id}/evaluation", {"satisfaction": 3}, _bearer(flow.g.admin_token)
    )
    for refused in (again, other, staff):
        assert refused.status == 409
        assert "already evaluated" in refused.body["errors"]["satisfaction"][0]

    for url in (first.body["progress_url"], second.body["progress_url"]):
        view = flow.progress(url)
        assert view["can_evaluate"] is False
        assert view["evaluation"]["satisfaction"] == 5
        assert view["evaluation"]["at"] == view["milestones"][-1]["at"]
        assert _milestones(view)[-1] == "evaluated"
        assert "处理很快" not in json.dumps(view, ensure_ascii=False)
    staff_view = flow.staff_view(case_id)
    assert staff_view["satisfaction"] == 5
    evaluated = [e for e in staff_view["timeline"] if e["kind"] == v.ENTRY_EVALUATED]
    assert len(evaluated) == 1
    entry = {k: val for k, val in evaluated[0].items() if k != "at"}
    assert entry == {
        "kind": v.ENTRY_EVALUATED,
        "satisfaction": 5,
        "note": "处理很快",
        "by": "reporter",
    }


def test_an_evaluation_before_the_case_is_closed_is_a_409_saying_so_and_writes_nothing(flow):
    answer = flow.report()
    flow.pump()
    before = flow.every_stored_value()
    refused = flow.evaluate(answer.body["progress_url"], {"satisfaction": 4})
    assert refused.status == 409
    assert "closed" in refused.body["errors"]["case_id"][0]
    assert flow.every_stored_value() == before


def test_a_bad_evaluation_body_is_a_400_naming_the_field(flow):
    answer = flow.report()
    flow.pump()
    flow.close(answer.body["case_id"])
    refused = flow.evaluate(answer.body["progress_url"], {"satisfaction": 6})
    assert (refused.status, list(refused.body["errors"])) == (400, ["satisfaction"])
    assert flow.progress(answer.body["progress_url"])["can_evaluate"] is True


def test_twenty_parallel_evaluations_with_one_link_take_exactly_one(flow):
    answer = flow.report()
    flow.pump()
    flow.close(answer.body["case_id"])
    path = _path(answer.body["progress_url"]) + "/evaluation"
    barrier = threading.Barrier(20)
    results: list = [None] * 20

    def evaluate(i: int) -> None:
        barrier.wait()
        results[i] = flow.api.handle("POST", path, _json({"satisfaction": i % 5 + 1}))

    threads = [threading.Thread(target=evaluate, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    statuses = sorted(r.status for r in results)
    assert statuses == [200] + [409] * 19, statuses
    (winner,) = [r for r in results if r.status == 200]
    view = flow.staff_view(answer.body["case_id"])
    assert view["satisfaction"] == winner.body["satisfaction"]
    assert [e["kind"] for e in view["timeline"]].count(v.ENTRY_EVALUATED) == 1


# --------------------------------------------------------------------------- no link to resubmit


def test_a_resubmission_gets_no_link_and_says_why(flow):
    first = flow.report(external_id="hotline-4711", channel="hotline", reporter=ZHANG)
    assert first.status == 201
    # Anyone who knows (or guesses) a ticket number can send it again, with anything else.
    again = flow.report(
        external_id="hotline-4711", channel="hotline", description="想看看别人的案件"
    )
    assert (again.status, again.body["outcome"]) == (200, v.OUTCOME_RESUBMISSION)
    assert again.body["case_id"] == first.body["case_id"]
    assert again.body["progress_url"] is None
    assert "resubmission" in again.body["progress_note"]
    # Exactly one link exists for the report, the first answer's.
    with flow.g.engine.connect() as conn:
        hashes = conn.execute(sa.select(models.reports.c.progress_token_hash)).scalars().all()
    token = first.body["progress_url"].rsplit("/", 1)[1]
    assert hashes == [token_hash(token)]


# ------------------------------------------------------------------ unknown and hostile tokens


def _hostile_tokens(flow) -> list[str]:
    real = flow.report().body["progress_url"].rsplit("/", 1)[1]
    return [
        "gfr_" + "A" * 43,  # well formed, unknown
        real[:-1],  # one character short
        real + "A",  # one too many
        real[:-1] + ("B" if real[-1] != "B" else "C"),  # one character changed
        real.upper(),
        "gfr_" + "\x00" * 43,
        real[:20] + "\x00" + real[21:],
        "gfr_" + "A" * 10_000,
        "x" * 10_240,
        "gfr_" + "令" * 43,
        "gfr_" + "Ａ" * 43,  # full-width letters: not the ASCII the tokens are made of
        real + "%0A",  # a newline after the token (a regex's $ lets one through)
        "%00",
        "..",
        "'; DROP TABLE intake_reports; --",
        flow.g.admin_token,  # a real credential of another kind
        token_hash(real),  # what the register keeps is not the key
    ]


def test_unknown_and_hostile_tokens_get_one_and_the_same_404(flow):
    known = flow.report()
    unknown = flow.get(f"{pg.PROGRESS_PATH}/gfr_" + "A" * 43)
    assert unknown.status == 404
    for token in _hostile_tokens(flow):
        for method, suffix, body in (
            ("GET", "", b""),
            ("POST", "/evaluation", b'{"satisfaction": 5}'),
        ):
            answer = flow.api.handle(method, f"{pg.PROGRESS_PATH}/{token}{suffix}", body, {})
            assert (answer.status, answer.body) == (404, unknown.body), (repr(token[:60]), method)
    # The case behind a real link was not touched by any of it.
    assert flow.progress(known.body["progress_url"])["evaluation"] is None


def test_a_link_from_before_the_register_kept_links_finds_nothing(flow):
    """Reports taken before intake_0060 have no token hash: no token, not even the empty one the
    path converter makes of a malformed token, reaches them."""
    answer = flow.report()
    with flow.g.engine.begin() as conn:
        conn.execute(sa.update(models.reports).values(progress_token_hash=None))
    for token in (answer.body["progress_url"].rsplit("/", 1)[1], "", "gfr_"):
        assert flow.get(f"{pg.PROGRESS_PATH}/{token}").status == 404


# --------------------------------------------------------------------- the token goes nowhere


def test_the_token_is_in_no_event_no_row_and_no_log_line(flow, caplog, capfd):
    install_record_masking()  # as every Gridflow process does at start (logging.configure)
    caplog.set_level(logging.DEBUG)
    first = flow.report(reporter=ZHANG, external_id="web-leak-1")
    flow.pump()
    second = flow.report(reporter=LI)
    case_id = first.body["case_id"]
    flow.close(case_id)
    flow.pump()
    for answer in (first, second):
        flow.progress(answer.body["progress_url"])
    assert flow.evaluate(first.body["progress_url"], {"satisfaction": 4}).status == 200
    assert flow.evaluate(second.body["progress_url"], {"satisfaction": 4}).status == 409
    flow.pump()
    tokens = [a.body["progress_url"].rsplit("/", 1)[1] for a in (first, second)]

    published = "\n".join(flow.published)
    assert c.CASE_REGISTERED in published and case_id in published  # the events were seen
    stored = flow.every_stored_value()
    assert case_id in stored and "intake_audit" in stored
    logged = "\n".join(r.getMessage() for r in caplog.records) + "\n".join(capfd.readouterr())
    departments = json.dumps(
        {k: list(q) for k, q in flow.g.bus.department_queues.items()}, ensure_ascii=False
    )
    for token in tokens:
        secret = token[len("gfr_") :]
        for where, text in (
            ("an event", published),
            ("a row", stored),
            ("a log line", logged),
            ("a department's queue", departments),
        ):
            assert secret not in text, f"the token is in {where}"
    with flow.g.engine.connect() as conn:
        assert flow.g.runtimes[c.INTAKE].pending_outbox() == 0
        kept = conn.execute(sa.select(models.reports.c.progress_token_hash)).scalars().all()
    assert sorted(kept) == sorted(token_hash(t) for t in tokens)


@pytest.mark.parametrize(
    "line",
    [
        '127.0.0.1 - - "GET /api/v1/progress/{token} HTTP/1.1" 200 -',
        '"POST /api/v1/progress/{token}/evaluation HTTP/1.1" 409 -',
        "GET /api/v1/session/link?token={token}",
        "{token}",
    ],
)
def test_a_token_in_a_log_line_keeps_its_prefix_and_loses_the_rest(line):
    token, _ = pg.new_progress_token()
    masked = mask_personal_numbers(line.format(token=token))
    assert token[4:] not in masked
    assert line.format(token="gfr_***") == masked
    # A token cut short is masked as well; what is masked can be read by nobody.
    assert token[4:30] not in mask_personal_numbers(line.format(token=token[:30]))


def test_a_token_whose_digits_read_as_a_phone_number_is_masked_whole():
    token = "gfr_" + "abc13900000001" + "x" * 29
    assert mask_personal_numbers(f"GET /api/v1/progress/{token}") == "GET /api/v1/progress/gfr_***"


# ------------------------------------------------------------------ `gridflow run` and its log


def _raw_get(port: int, target: bytes) -> tuple[int, bytes]:
    """A request line sent byte for byte (no client library would send these)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_the_link_over_http_in_gridflow_run_leaves_no_token_in_its_log(tmp_path):
    port = free_port()
    log_file = tmp_path / "gridflow.log"
    env = {
        **os.environ,
        "GRIDFLOW_ADMIN_TOKEN_FILE": str(tmp_path / "admin-token"),
        "GRIDFLOW_PUBLIC_URL": "https://gridflow.example.gov.cn/",
    }
    with open(log_file, "w") as out:
        proc = subprocess.Popen(
            [str(GRIDFLOW), "run", "--port", str(port), "--clock", "simulated"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/healthz", proc=proc)
        with httpx.Client(base_url=base, timeout=10) as client:
            answer = client.post(REPORTS, json=_report(reporter=ZHANG))
            assert answer.status_code == 201, answer.text
            url = answer.json()["progress_url"]
            assert url.startswith("https://gridflow.example.gov.cn/api/v1/progress/gfr_")
            path = _path(url)
            deadline = time.monotonic() + 20
            while client.get(path).json()["status"] != v.DISPATCHED:
                assert time.monotonic() < deadline, "the case was never dispatched"
                time.sleep(0.05)  # bounded poll: the embedded default routes on its own thread
            assert client.post(path + "/evaluation", json={"satisfaction": 5}).status_code == 409
            unknown = client.get(f"{pg.PROGRESS_PATH}/gfr_" + "A" * 43)
            assert unknown.status_code == 404
        for target in (
            b"/api/v1/progress/gfr_%00%00",
            b"/api/v1/progress/gfr_" + b"\x00" * 43,
            b"/api/v1/progress/gfr_" + "令".encode() * 43,
            b"/api/v1/progress/gfr_" + b"\xff\xfe" * 20,
            b"/api/v1/progress/gfr_%E4%BB%A4%ff",
            b"/api/v1/progress/" + b"A" * 10_240,
        ):
            status, body = _raw_get(port, target)
            assert (status, json.loads(body)) == (404, unknown.json()), target[:60]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    logged = log_file.read_text(encoding="utf-8", errors="replace")
    assert "/api/v1/progress/gfr_***" in logged  # the request lines were logged, masked
    assert url.rsplit("/", 1)[1][4:] not in logged
    assert "Traceback" not in logged and '"level": "error"' not in logged


# ------------------------------------------------------------------ the domain's choice, alone


def test_only_the_named_milestones_are_shown_and_a_new_kind_stays_private():
    from gridflow_common.domain import progress as p

    at = dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.timezone.utc)
    entries = [
        p.Entry(at, v.REGISTERED, {"channel": "web", "area_code": "330302104001001"}),
        p.Entry(at, v.ENTRY_REPORT_JOINED, {"channel": "web"}),
        p.Entry(at, v.ENTRY_ROUTED, {"explanation": "按类别派至藤桥环保所"}),
        p.Entry(at, v.DISPATCHED, {"handler": "known-unit", "queue": "q"}),
        p.Entry(at, v.ENTRY_WARNING, {"colour": v.RED}),
        p.Entry(at, v.RETURNED, {"sender": "known-unit", "note": "非本单位职责"}),
        p.Entry(at, v.AWAITING_ORDER, {"handler": "command-1"}),
        p.Entry(at, v.DISPATCHED, {"handler": "gone-unit"}),
        p.Entry(at, v.ENTRY_VERIFICATION_FAILED, {"note": "现场仍有垃圾"}),
        p.Entry(at, "a_kind_added_later", {"secret": "x"}),
    ]
    names = {"known-unit": "藤桥环保所"}
    shown = p.milestones(entries, names.get)
    assert [(m.kind, m.name) for m in shown] == [
        ("registered", "已受理立案"),
        ("dispatched", "已派遣至藤桥环保所"),
        ("dispatched", "已派遣至承办单位"),
        ("rework", "核查未通过，重新处置"),
    ]


@pytest.mark.parametrize(
    ("status", "satisfaction", "expected"),
    [
        (v.CLOSED, None, True),
        (v.CLOSED, 4, False),
        (v.RESOLVED, None, False),
        (v.REJECTED, None, False),
    ],
)
def test_a_case_can_be_evaluated_when_closed_and_not_yet_evaluated(status, satisfaction, expected):
    from gridflow_common.domain import progress as p

    assert p.can_evaluate(status, satisfaction) is expected
