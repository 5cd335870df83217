"""Signed one-time action links (issue 7, point 6): the token (gridflow_common.links), its key
kept in the platform table and shared by every process, and intake's /api/v1/links/<token>, as
a unit's duty person, a mail scanner and an attacker meet it.

In process through ``IntakeApi`` on the embedded default (the bus pumped by hand), with links
signed as the departments service signs them: on the same database, with the same key.
"""

from __future__ import annotations

import concurrent.futures
import json
import time

import pytest
import sqlalchemy as sa

from gridflow_common import links
from gridflow_common.db import make_engine, secrets_table
from gridflow_common.domain import vocabulary as v
from gridflow_common.migrate import PLATFORM, upgrade
from gridflow_intake import models
from gridflow_intake.access import Limits
from gridflow_intake.links_api import CONTENT_SECURITY_POLICY
from gridflow_intake.ratelimit import Limit
from tests.support.email_harness import delivery_of, department_message
from tests.unit.test_intake_cases import _pump

PUBLIC = "http://gridflow.test"
HOLDER = "urban_management-330302104"  # 藤桥执法中队: holds a streetlight out in Tengqiao
STREETLIGHT = {
    "channel": "web",
    "description": "藤桥戍浦社区门口的路灯不亮，联系电话13800000002",
    "category": "component.streetlight",
    "location": {"lat": 28.05, "lon": 120.64},
}
JSON = {"Accept": "application/json"}


class City:
    """One embedded Gridflow with one case dispatched to the Tengqiao station, and a signer as
    the departments service would make it."""

    def __init__(self, gridflow, **report_changes):
        self.g = gridflow
        self.api = gridflow.api()
        answer = self.api.handle(
            "POST", "/api/v1/reports", json.dumps({**STREETLIGHT, **report_changes}).encode()
        )
        assert answer.status == 201, answer.body
        self.case_id = answer.body["case_id"]
        _pump(gridflow)
        row = self.case_row()
        assert (row.holder, row.status) == (HOLDER, v.DISPATCHED)
        self.assignment_id = row.assignment_id
        self.sign = links.make_signer(gridflow.engine, PUBLIC)

    def case_row(self):
        with self.g.engine.connect() as conn:
            return conn.execute(
                sa.select(models.cases).where(models.cases.c.case_id == self.case_id)
            ).one()

    def delivery(self, unit: str = HOLDER, delivery_id: str = "d-1", **changes):
        message = department_message(
            self.case_id,
            unit,
            delivery_id=delivery_id,
            assignment_id=changes.pop("assignment_id", self.assignment_id),
            **changes,
        )
        return delivery_of(message)

    def link(self, action: str = v.ACCEPTED, ttl: float = 3600, **changes) -> str:
        url = self.sign(self.delivery(**changes), action, ttl)
        assert url.startswith(PUBLIC + links.LINKS_PATH + "/"), url
        return url[len(PUBLIC) :]

    def get(self, path: str, headers: dict | None = None):
        return self.api.handle("GET", path, b"", headers or {})

    def post(self, path: str, headers: dict | None = None):
        return self.api.handle("POST", path, b"", headers or {})

    def admin(self, path: str):
        answer = self.api.handle(
            "GET", path, b"", {"Authorization": f"Bearer {self.g.admin_token}"}
        )
        assert answer.status == 200, answer.body
        return answer.body

    def view(self) -> dict:
        return self.admin(f"/api/v1/cases/{self.case_id}")


def page(answer) -> str:
    assert answer.content_type == "text/html; charset=utf-8", answer.content_type
    assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    return answer.body.decode("utf-8")


@pytest.fixture
def city(gridflow):
    return City(gridflow)


# -- the token -----------------------------------------------------------------------------------


def _claims(**changes) -> links.LinkClaims:
    values = dict(
        delivery_id="d-1",
        case_id="GF-20261126-ABCDEFGHJK",
        assignment_id="GF-20261126-ABCDEFGHJK-1",
        unit=HOLDER,
        action=v.ACCEPTED,
        expires=int(time.time()) + 600,
        nonce="n-1",
    )
    values.update(changes)
    return links.LinkClaims(**values)


def test_a_token_says_what_it_was_signed_for_until_it_expires():
    key = b"k" * 32
    claims = _claims()
    token = links.sign(claims, key)
    assert token.startswith(links.PREFIX)
    assert links.verify(token, key, time.time()) == claims
    with pytest.raises(links.LinkExpired):
        links.verify(token, key, claims.expires)


_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _unused_bits_set(last: str) -> str:
    """The base64url character with the same 4 data bits as ``last`` and its 2 low bits set."""
    return _B64URL_ALPHABET[_B64URL_ALPHABET.index(last) | 0b11]


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="signature"),
        # The last character of a 32-byte signature carries 4 bits and 2 unused ones: a change
        # of the unused bits alone decodes to the same bytes, and is still not the token.
        pytest.param(lambda t: t[:-1] + _unused_bits_set(t[-1]), id="unused-bits"),
        pytest.param(lambda t: t[:10] + ("A" if t[10] != "A" else "B") + t[11:], id="claims"),
        pytest.param(lambda t: t.replace(".", ""), id="no-dot"),
        pytest.param(lambda t: t[: len(t) // 2], id="cut"),
        pytest.param(lambda t: t + "=", id="padding"),
        pytest.param(lambda t: "gfr_" + t[4:], id="other-prefix"),
        pytest.param(lambda t: t.replace("gfa_", "gfa_\x00"), id="nul"),
        pytest.param(lambda t: "gfa_" + "A" * 5000 + "." + "A" * 43, id="huge"),
    ],
)
def test_a_changed_token_is_invalid_and_never_says_which_byte(mangle):
    key = b"k" * 32
    token = links.sign(_claims(), key)
    with pytest.raises(links.LinkInvalid) as caught:
        links.verify(mangle(token), key, time.time())
    assert str(caught.value) == "this link is not valid"


def test_claims_a_forger_rewrites_and_signs_with_another_key_are_invalid():
    token = links.sign(_claims(unit="police-330302104", expires=2**40), b"x" * 32)
    with pytest.raises(links.LinkInvalid):
        links.verify(token, b"k" * 32, time.time())


def test_an_expired_token_signed_with_another_key_is_invalid_not_expired():
    """Expiry is read only from claims whose signature holds: a forger learns nothing."""
    token = links.sign(_claims(expires=1), b"x" * 32)
    with pytest.raises(links.LinkInvalid):
        links.verify(token, b"k" * 32, time.time())


def test_a_link_cannot_return_a_case_or_live_for_months():
    with pytest.raises(ValueError, match="cannot 'returned'"):
        links.sign(_claims(action=v.RETURNED), b"k" * 32)
    signer = links.make_signer(links.LinkSecret(None, {links.LINK_SECRET_ENV: "s" * 32}), PUBLIC)
    delivery = delivery_of(department_message())
    with pytest.raises(ValueError, match="at most"):
        signer(delivery, v.ACCEPTED, links.MAX_LIFETIME_SECONDS + 1)


# -- the key -------------------------------------------------------------------------------------


def _race_for_the_key(url: str, processes: int = 6) -> set[bytes]:
    """``processes`` engines, as many services and replicas would, each asking for the key
    at once on a database where there is none yet."""
    engines = [make_engine(url) for _ in range(processes)]
    try:
        with concurrent.futures.ThreadPoolExecutor(processes) as pool:
            keys = set(pool.map(lambda e: links.LinkSecret(e, environ={}).key(), engines))
    finally:
        for engine in engines:
            engine.dispose()
    return keys


def test_every_process_on_a_sqlite_file_gets_the_same_key(tmp_path):
    url = f"sqlite:///{tmp_path}/links.sqlite"
    upgrade(make_engine(url), PLATFORM)
    keys = _race_for_the_key(url)
    assert len(keys) == 1 and len(next(iter(keys))) == links.SECRET_BYTES
    # Kept: a process started later reads it, it does not make another.
    assert _race_for_the_key(url, 1) == keys


def test_every_process_on_postgresql_gets_the_same_key(database_url):
    engine = make_engine(database_url)
    upgrade(engine, PLATFORM)
    with engine.begin() as conn:
        conn.execute(sa.delete(secrets_table))
    keys = _race_for_the_key(database_url)
    assert len(keys) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(secrets_table)).scalar() == 1
    engine.dispose()


def test_the_configured_secret_wins_over_the_stored_one(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/links.sqlite")
    upgrade(engine, PLATFORM)
    configured = links.LinkSecret(engine, {links.LINK_SECRET_ENV: "a-long-configured-secret"})
    assert configured.key() == b"a-long-configured-secret"
    assert links.LinkSecret(engine, {}).key() != configured.key()
    with pytest.raises(ValueError, match="too short"):
        links.LinkSecret(engine, {links.LINK_SECRET_ENV: "short"}).key()


# -- GET: the page, nothing spent ----------------------------------------------------------------


def test_opening_a_link_shows_the_case_in_chinese_and_changes_nothing(city):
    path = city.link(v.ACCEPTED)
    # A mail scanner and a link preview open it first; then the person.
    for _ in range(3):
        answer = city.get(path)
        assert answer.status == 200, answer.body
    text = page(answer)
    assert city.case_id in text
    assert "路灯不亮" in text  # the category's Chinese name
    assert "藤桥执法中队" in text  # the unit, by name
    assert "确认签收" in text and '<form method="post">' in text
    # The description masked, as everywhere outside intake; the token not repeated in the page.
    assert "138****0002" in text and "13800000002" not in text
    assert links.PREFIX not in text
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert city.case_row().status == v.DISPATCHED
    # Still good: nothing was spent.
    assert city.post(path).status == 200
    assert city.case_row().status == v.ACCEPTED


def test_a_hostile_description_is_shown_as_text(gridflow):
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">"&路灯不亮'
    city = City(gridflow, description=hostile)
    text = page(city.get(city.link()))
    assert "<script>" not in text and "<img" not in text
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;"
        in text
    )
    # Nothing is loaded from anywhere, inline scripts included.
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY


def test_a_program_can_read_the_link_as_json(city):
    answer = city.get(city.link(v.RESOLVED), JSON)
    assert answer.status == 200
    assert answer.body["case_id"] == city.case_id
    assert (answer.body["action"], answer.body["action_name"]) == (v.RESOLVED, "办结")
    assert answer.body["unit"] == HOLDER


# -- POST: once ----------------------------------------------------------------------------------


def test_posting_a_link_accepts_the_case_once_as_its_unit(city):
    path = city.link(v.ACCEPTED)
    answer = city.post(path)
    assert answer.status == 200
    assert "已签收" in page(answer)
    view = city.view()
    assert view["status"] == v.ACCEPTED
    entry = view["timeline"][-1]
    assert (entry["kind"], entry["sender"]) == (v.ACCEPTED, HOLDER)

    again = city.post(path)
    assert again.status == 409
    assert "此链接已于" in page(again) and "使用" in page(again)
    as_json = city.post(path, JSON)
    assert as_json.status == 409
    assert as_json.body["errors"] == {"link": ["this link was already used"]}
    assert "无需重复操作" in as_json.body["message"]
    # Done once: one acceptance in the timeline.
    kinds = [e["kind"] for e in city.view()["timeline"]]
    assert kinds.count(v.ACCEPTED) == 1


def test_a_second_copy_of_the_mail_cannot_do_the_work_again(city):
    """A delivery pushed twice carries two links for one action (another nonce): one of them
    does it, the other finds it done."""
    first, second = city.link(v.ACCEPTED), city.link(v.ACCEPTED)
    assert first != second
    assert city.post(first, JSON).status == 202
    assert city.post(second, JSON).status == 409


def test_the_lead_works_the_case_through_its_links(city):
    for action, status in (
        (v.ACCEPTED, v.ACCEPTED),
        (v.IN_PROGRESS, v.IN_PROGRESS),
        (v.RESOLVED, v.RESOLVED),
    ):
        answer = city.post(city.link(action), JSON)
        assert answer.status == 202, answer.body
        assert answer.body == {"case_id": city.case_id, "status": action, "unit": HOLDER}
        assert city.case_row().status == status


def test_an_action_the_case_cannot_take_now_is_refused_and_spends_nothing(city):
    assert city.post(city.link(v.RESOLVED), JSON).status == 202
    accept = city.link(v.ACCEPTED)
    answer = city.post(accept)
    assert answer.status == 409
    assert "当前状态为“已处置待核查”，无法签收" in page(answer)
    with city.g.engine.connect() as conn:
        spent = conn.execute(
            sa.select(models.spent_links.c.action).where(
                models.spent_links.c.case_id == city.case_id
            )
        ).scalars()
        assert list(spent) == [v.RESOLVED]


def test_an_expired_link_is_gone(city):
    signer = links.make_signer(city.g.engine, PUBLIC, now=lambda: time.time() - 7200)
    path = signer(city.delivery(), v.ACCEPTED, 3600)[len(PUBLIC) :]
    for answer in (city.get(path), city.post(path)):
        assert answer.status == 410
        assert "链接已过期" in page(answer)
    assert city.post(path, JSON).body["errors"]["link"][0].startswith("this link expired at")
    assert city.case_row().status == v.DISPATCHED


def test_a_tampered_link_is_not_found_and_says_nothing_more(city):
    path = city.link(v.ACCEPTED)
    head, _, token = path.rpartition("/")
    payload, _, signature = token.partition(".")
    # The claims rewritten for another unit, the signature kept; a flipped signature; a token
    # signed with another key; a path that is no token at all.
    claims = json.loads(links._b64decode(payload[len(links.PREFIX) :]))
    claims["unit"] = "police-330302104"
    forged = links.PREFIX + links._b64encode(json.dumps(claims).encode()) + "." + signature
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    other_key = links.sign(_claims(case_id=city.case_id), b"o" * 32)
    answers = [
        method(f"{head}/{t}")
        for t in (forged, flipped, other_key, "gfa_nothing", "x" * 3000)
        for method in (city.get, city.post)
    ]
    assert {a.status for a in answers} == {404}
    assert len({a.body for a in answers}) == 1
    text = page(answers[0])
    assert "链接无效" in text and city.case_id not in text
    assert city.case_row().status == v.DISPATCHED


def test_a_link_for_a_unit_that_does_not_hold_the_case_is_refused(city):
    """Signed for the police station: the case is the urban-management station's. Refused
    without naming who holds it."""
    path = city.link(v.ACCEPTED, unit="police-330302104")
    answer = city.post(path)
    assert answer.status == 409
    text = page(answer)
    assert "已不再承办" in text and HOLDER not in text and "藤桥执法中队" not in text
    assert city.case_row().status == v.DISPATCHED
    assert city.post(path, JSON).body["errors"]["link"] == [
        "'police-330302104' no longer holds this case"
    ]


def test_a_link_for_an_earlier_assignment_is_over(city):
    """The case moved on (here: its view says assignment 2): the work the link was sent for
    is over, even though the same unit holds the case again."""
    with city.g.engine.begin() as conn:
        conn.execute(
            sa.update(models.cases)
            .where(models.cases.c.case_id == city.case_id)
            .values(assignment_id=f"{city.case_id}-2", assignment_seq=2)
        )
    answer = city.post(city.link(v.ACCEPTED))
    assert answer.status == 409
    assert "已重新派遣" in page(answer)
    assert city.case_row().status == v.DISPATCHED


def test_every_post_is_audited_as_the_links_unit(city):
    path = city.link(v.ACCEPTED)
    city.post(path)
    city.post(path)
    city.post(path.replace("gfa_", "gfa_A"))
    entries = city.admin("/api/v1/admin/audit?actor=link:" + HOLDER)["entries"]
    assert [(e["outcome"], e["detail"]["status"]) for e in entries] == [
        ("refused", 409),
        ("ok", 202),
    ]
    assert all(e["target"] == city.case_id and e["action"] == "post_link" for e in entries)
    # Never the token, anywhere in the audit log.
    everything = json.dumps(city.admin("/api/v1/admin/audit")["entries"])
    assert links.PREFIX not in everything
    anonymous = city.admin("/api/v1/admin/audit?actor=anonymous&action=post_link")["entries"]
    assert [e["detail"]["status"] for e in anonymous] == [404]


def test_links_are_limited_per_address_and_a_bad_one_costs_more(city):
    access = city.api.access
    access.limits = Limits(anonymous=Limit(4, 3600))
    good = city.link(v.ACCEPTED)
    assert city.get(good).status == 200  # 1 of 4
    assert city.get("/api/v1/links/gfa_forged.x").status == 404  # 2 and 3: a bad one costs twice
    assert city.get(good).status == 200  # 4
    answer = city.post(good)
    assert answer.status == 429 and "Retry-After" in answer.headers
    assert city.case_row().status == v.DISPATCHED


def test_links_made_away_from_a_request_point_at_the_public_url():
    assert links.public_url({"GRIDFLOW_PUBLIC_URL": "https://gridflow.example.gov.cn/"}) == (
        "https://gridflow.example.gov.cn"
    )
    assert links.public_url({"GRIDFLOW_PORT": "8123"}) == "http://127.0.0.1:8123"


# -- over real HTTP, as a browser clicks --------------------------------------------------------


def test_a_browser_opens_the_link_and_submits_the_form_over_http(tmp_path):
    """`gridflow run` as a person starts it; the page fetched and its form submitted as a
    browser does (an empty urlencoded body), the key read from the server's own database."""
    from tests.unit.running_server import running_gridflow

    with running_gridflow(tmp_path) as running, running.client() as client:
        answer = client.post("/api/v1/reports", json=STREETLIGHT)
        assert answer.status_code == 201, answer.text
        case_id = answer.json()["case_id"]
        engine = running.engine()
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as conn:
                row = conn.execute(
                    sa.select(models.cases).where(models.cases.c.case_id == case_id)
                ).one()
            if row.holder == HOLDER or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # bounded wait for the case to be dispatched
        assert row.holder == HOLDER
        message = department_message(case_id, HOLDER, assignment_id=row.assignment_id)
        url = links.make_signer(engine, running.url)(delivery_of(message), v.ACCEPTED, 600)
        engine.dispose()

        shown = client.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*"})
        assert shown.status_code == 200
        assert shown.headers["content-type"] == "text/html; charset=utf-8"
        assert shown.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "确认签收" in shown.text

        done = client.post(
            url, content=b"", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert done.status_code == 200, done.text
        assert "已签收" in done.text
        again = client.post(url, headers={"Accept": "application/json"})
        assert again.status_code == 409
        assert again.json()["errors"] == {"link": ["this link was already used"]}
        view = client.get(f"/api/v1/cases/{case_id}", headers=running.admin).json()
        assert view["status"] == v.ACCEPTED
