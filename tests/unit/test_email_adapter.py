"""The e-mail adapter (issue 7, point 6) against a real SMTP server: aiosmtpd on loopback that
takes, refuses (550), defers (451), asks for a login, goes down and comes back; and a server
that takes the connection and never answers. The last tests follow a mail's links into intake
on the embedded default, as the duty person of a station with no system of its own would.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from gridflow_common import links
from gridflow_common.adapters import (
    ASSISTING,
    CHANGE_CLOSED,
    CHANGE_COLOUR,
    CHANGE_WITHDRAWN,
    KIND_CHANGE,
    AdapterConfig,
    PushFailed,
    PushRefused,
    registry,
)
from gridflow_common.domain import vocabulary as v
from gridflow_departments.adapters.email import EmailAdapter, EmailOptions
from tests.support.email_harness import (
    SilentServer,
    SmtpServer,
    delivery_of,
    department_message,
    free_port,
    link_context,
)

DUTY = "duty@tengqiao.example.cn"
LEADER = "leader@tengqiao.example.cn"
UNIT = "urban_management-330302104"
URL = re.compile(r"(签收|开始处置|办结)：(\S+)")


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.close()


def adapter_for(
    server_url: str, endpoint: str = f"mailto:{DUTY},{LEADER}", context=None, **options
) -> EmailAdapter:
    config = AdapterConfig(
        code=UNIT,
        adapter="email",
        endpoint=endpoint,
        credential_ref=options.pop("credential_ref", None),
        options={"smtp_url": server_url, "timeout": 2.0, **options},
    )
    return EmailAdapter(config, context or link_context())


def links_in(text: str) -> dict[str, str]:
    return {name: url for name, url in URL.findall(text)}


# -- the message ---------------------------------------------------------------------------------


def test_a_case_arrives_as_readable_chinese_with_its_three_links(smtp):
    adapter = adapter_for(smtp.url)
    result = adapter.push(delivery_of(department_message(delivery_id="d-42")))
    assert result.detail == "sent to 2 of 2"
    [mail] = smtp.received
    assert mail.mail_from == "gridflow@localhost"
    assert mail.rcpt_tos == [DUTY, LEADER]
    message = mail.message
    assert message["Subject"] == "【网格化案件】请签收：路灯不亮 GF-20261126-ABCDEFGHJK（主办）"
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert {p.get_content_charset() for p in message.iter_parts()} == {"utf-8"}
    assert message["X-Gridflow-Delivery"] == "d-42"
    assert message["From"].addresses[0].display_name == "网格化管理平台"
    assert message["Message-ID"] == "<gridflow.d-42@localhost>"
    assert message["Auto-Submitted"] == "auto-generated"

    text = mail.text()
    for line in (
        "案件编号：GF-20261126-ABCDEFGHJK",
        "案件类别：路灯不亮",
        "问题描述：藤桥戍浦社区门口的路灯不亮，电话138****0002",
        "所在区域：藤桥镇 / 戍浦社区 / 戍浦社区第一网格",
        "地址：藤桥镇戍浦社区门口",
        "坐标：纬度 28.05，经度 120.64",
        "处置时限：2026年11月27日 17:30前",
        "预警状态：绿色（正常）",
        "贵单位角色：主办",
        "主办单位：urban_management-330302104",
        "协办部门：housing、fire",
        "派遣原因：新派遣",
    ):
        assert line in text, line
    found = links_in(text)
    assert set(found) == {"签收", "开始处置", "办结"}
    html_part = mail.text("html")
    for name, url in found.items():
        assert url.startswith("http://gridflow.test/api/v1/links/gfa_")
        assert f'href="{url}"' in html_part and name in html_part


def test_each_link_does_what_it_says_for_this_delivery(smtp):
    key = links.LinkSecret(None, {links.LINK_SECRET_ENV: "one-key-for-signer-and-verifier"})
    adapter = adapter_for(smtp.url, context=link_context(link_secret=key), link_ttl_hours=2)
    delivery = delivery_of(department_message(delivery_id="d-7"))
    adapter.push(delivery)
    found = links_in(smtp.received[0].text())
    now = time.time()
    actions = {}
    for name, url in found.items():
        claims = links.verify(url.rpartition("/")[2], key, now)
        assert (claims.delivery_id, claims.case_id, claims.unit) == ("d-7", delivery.case_id, UNIT)
        assert claims.assignment_id == delivery.assignment_id
        assert 2 * 3600 - 60 < claims.expires - now <= 2 * 3600
        actions[name] = claims.action
    assert actions == {"签收": v.ACCEPTED, "开始处置": v.IN_PROGRESS, "办结": v.RESOLVED}


def test_a_duplicate_push_is_the_same_message(smtp):
    adapter = adapter_for(smtp.url)
    delivery = delivery_of(department_message(delivery_id="d-1"))
    adapter.push(delivery)
    adapter.push(delivery)
    adapter.push(delivery_of(department_message(delivery_id="d-2")))
    ids = [m.message["Message-ID"] for m in smtp.received]
    assert ids[0] == ids[1] != ids[2]
    # One conversation per case and unit in a mail client.
    assert len({m.message["References"] for m in smtp.received}) == 1


def test_an_assisting_unit_is_told_what_it_assists_and_gets_no_links(smtp):
    def no_links(*_args):
        raise AssertionError("an assisting unit's message signs no link")

    context = link_context()
    context = type(context)(context.secret, no_links, context.public_url, context.now)
    adapter = adapter_for(smtp.url, context=context)
    adapter.push(delivery_of(department_message(unit="housing-330302104", role=ASSISTING)))
    [mail] = smtp.received
    assert (
        mail.message["Subject"] == "【网格化案件】请协办：路灯不亮 GF-20261126-ABCDEFGHJK（协办）"
    )
    text = mail.text()
    assert "贵单位角色：协办" in text
    assert "由 urban_management-330302104 主办" in text
    assert "登录网格化管理平台（http://gridflow.test）" in text and "收件箱" in text
    assert links_in(text) == {} and "/api/v1/links/" not in mail.raw.decode("ascii")


def test_hostile_text_stays_text_and_cannot_add_a_header(smtp):
    adapter = adapter_for(smtp.url)
    message = department_message(
        description='<script>alert(1)</script><a href="http://evil">点这里</a>',
        category_name="路灯\r\nBcc: thief@evil.example",
    )
    adapter.push(delivery_of(message))
    [mail] = smtp.received
    assert mail.rcpt_tos == [DUTY, LEADER]
    assert mail.message["Bcc"] is None
    assert "\n" not in mail.message["Subject"]
    html_part = mail.text("html")
    assert "<script>" not in html_part and 'href="http://evil"' not in html_part
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_part
    assert '<script>alert(1)</script><a href="http://evil">点这里</a>' in mail.text()


@pytest.mark.parametrize(
    "change, extra, subject, line",
    [
        (CHANGE_WITHDRAWN, {}, "已撤回", "无需继续处置"),
        (CHANGE_COLOUR, {"colour": "red"}, "预警红色", "红色（严重超期，已督办）"),
        (CHANGE_CLOSED, {}, "已结案", "已核查结案"),
    ],
)
def test_a_change_is_a_short_message_in_the_same_conversation(smtp, change, extra, subject, line):
    adapter = adapter_for(smtp.url)
    adapter.push(delivery_of(department_message(delivery_id="d-case")))
    message = department_message(delivery_id="d-change", kind=KIND_CHANGE, change=change, **extra)
    adapter.push_change(delivery_of(message))
    case_mail, change_mail = smtp.received
    assert change_mail.message["Subject"].startswith(f"【网格化案件】{subject}：")
    assert line in change_mail.text()
    assert links_in(change_mail.text()) == {}
    assert change_mail.message["In-Reply-To"] == case_mail.message["References"]
    assert change_mail.message["Message-ID"] == "<gridflow.d-change@localhost>"


# -- what the server answers -----------------------------------------------------------------------


def test_a_mailbox_that_does_not_exist_is_a_refusal(smtp):
    adapter = adapter_for(smtp.url)
    smtp.refuse_next()
    with pytest.raises(PushRefused, match="550 5.1.1 mailbox unavailable"):
        adapter.push(delivery_of(department_message()))
    assert smtp.received == []


def test_try_later_is_a_failure_to_retry_and_the_retry_arrives(smtp):
    adapter = adapter_for(smtp.url)
    smtp.defer_next()
    with pytest.raises(PushFailed, match="451"):
        adapter.push(delivery_of(department_message()))
    assert smtp.received == []
    adapter.push(delivery_of(department_message()))
    assert len(smtp.received) == 1


def test_one_unknown_mailbox_among_two_still_reaches_the_other(smtp):
    smtp.no_such_mailbox(LEADER)
    result = adapter_for(smtp.url).push(delivery_of(department_message()))
    assert [m.rcpt_tos for m in smtp.received] == [[DUTY]]
    assert result.detail.startswith("sent to 1 of 2; refused: leader@tengqiao.example.cn (550")


def test_a_server_that_is_down_fails_the_push_and_health_until_it_is_back(smtp):
    adapter = adapter_for(smtp.url)
    assert adapter.health().ok
    smtp.go_down()
    started = time.monotonic()
    with pytest.raises(PushFailed, match="cannot reach"):
        adapter.push(delivery_of(department_message()))
    assert time.monotonic() - started < 2.0
    health = adapter.health()
    assert not health.ok and "cannot reach" in health.detail
    smtp.come_back()
    assert adapter.health().ok
    adapter.push(delivery_of(department_message()))
    assert len(smtp.received) == 1


def test_a_server_that_never_answers_fails_within_the_timeout():
    silent = SilentServer()
    try:
        adapter = adapter_for(silent.url, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(PushFailed, match="did not answer within 0.5 s"):
            adapter.push(delivery_of(department_message()))
        assert time.monotonic() - started < 1.5
        assert not adapter.health().ok
    finally:
        silent.close()


def test_the_password_comes_by_reference_and_a_wrong_one_is_retried(monkeypatch):
    server = SmtpServer(login=("tengqiao", "s3cret-pass"))
    try:
        monkeypatch.setenv("TENGQIAO_SMTP_PASSWORD", "s3cret-pass")
        adapter = adapter_for(
            server.url, username="tengqiao", credential_ref="env:TENGQIAO_SMTP_PASSWORD"
        )
        adapter.push(delivery_of(department_message()))
        assert server.logins == ["tengqiao"] and len(server.received) == 1

        monkeypatch.setenv("TENGQIAO_SMTP_PASSWORD", "wrong")
        with pytest.raises(PushFailed, match="refused the login of 'tengqiao'") as caught:
            adapter.push(delivery_of(department_message()))
        assert "wrong" not in str(caught.value)

        monkeypatch.delenv("TENGQIAO_SMTP_PASSWORD")
        with pytest.raises(PushFailed, match="TENGQIAO_SMTP_PASSWORD is not set"):
            adapter.push(delivery_of(department_message()))
        assert len(server.received) == 1
    finally:
        server.close()


def test_starttls_asked_of_a_server_without_it_is_a_failure_naming_it(smtp):
    with pytest.raises(PushFailed, match="does not offer STARTTLS"):
        adapter_for(smtp.url, starttls=True).push(delivery_of(department_message()))


# -- the city's data -------------------------------------------------------------------------------


def test_the_adapter_is_installed_and_keeps_the_contract():
    assert registry.load("email") is EmailAdapter


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"smtp_url": "smtp://user:pw@mail.example.cn"}, "no user or password in the SMTP URL"),
        ({"smtp_url": "http://mail.example.cn"}, "smtp:// or smtps://"),
        ({"from_address": "网格 <x@y>"}, "is not an e-mail address"),
        ({"link_ttl_hours": 0}, "link_ttl_hours"),
        ({"timeout": 600}, "timeout"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_options_are_refused_at_import_naming_them(options, problem):
    config = AdapterConfig(code=UNIT, adapter="email", endpoint=f"mailto:{DUTY}", options=options)
    problems = registry.config_problems(config)
    assert problems and all(column == "options" for column, _ in problems)
    assert any(problem in message for _, message in problems), problems
    assert EmailOptions().validate(options)


@pytest.mark.parametrize(
    "endpoint, problem",
    [
        ("duty@tengqiao.example.cn", "mailto:"),
        ("mailto:", "no empty one"),
        (f"mailto:{DUTY}?subject=hi", "no ?subject="),
        ("mailto:not-an-address", "is not an e-mail address"),
        ("mailto:duty@example.cn%0D%0ABcc:thief@evil.example", "is not an e-mail address"),
    ],
)
def test_a_bad_endpoint_refuses_every_push_and_fails_health(smtp, endpoint, problem):
    assert problem in (EmailAdapter.endpoint_problem(endpoint) or "")
    adapter = adapter_for(smtp.url, endpoint=endpoint)
    with pytest.raises(PushRefused, match=re.escape(problem)):
        adapter.push(delivery_of(department_message()))
    assert not adapter.health().ok
    assert smtp.received == []


def test_take_status_reads_a_status_message_in_the_units_own_words():
    adapter = adapter_for("smtp://127.0.0.1:1")
    report = adapter.take_status({"case_id": "GF-1", "status": "已签收", "note": "马上到"})
    assert (report.case_id, report.unit, report.word, report.note) == (
        "GF-1",
        UNIT,
        "已签收",
        "马上到",
    )
    with pytest.raises(ValueError, match="case_id"):
        adapter.take_status({"status": "accepted"})
    with pytest.raises(ValueError, match="body"):
        adapter.take_status(["accepted"])  # type: ignore[arg-type]
    assert adapter.poll_status([]) == []


def test_the_default_server_comes_from_the_environment(monkeypatch, smtp):
    monkeypatch.setenv("GRIDFLOW_SMTP_URL", smtp.url)
    config = AdapterConfig(code=UNIT, adapter="email", endpoint=f"mailto:{DUTY}")
    EmailAdapter(config, link_context()).push(delivery_of(department_message()))
    assert len(smtp.received) == 1
    monkeypatch.setenv("GRIDFLOW_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    with pytest.raises(PushFailed):
        EmailAdapter(config, link_context()).push(delivery_of(department_message()))


# -- from the mail into intake -----------------------------------------------------------------


def test_the_duty_person_accepts_and_resolves_the_case_from_the_mail(gridflow, smtp):
    from tests.unit.test_action_links import HOLDER, PUBLIC, City

    city = City(gridflow)
    context = link_context(PUBLIC, links.LinkSecret(gridflow.engine))
    adapter = adapter_for(smtp.url, context=context)
    adapter.push(city.delivery(HOLDER, delivery_id="d-mail"))
    found = links_in(smtp.received[0].text())
    accept, resolve = (found[name][len(PUBLIC) :] for name in ("签收", "办结"))

    # The mail scanner opens every link; nothing happens.
    for path in found.values():
        assert city.get(path[len(PUBLIC) :]).status == 200
    assert city.case_row().status == v.DISPATCHED

    assert city.post(accept).status == 200
    assert city.case_row().status == v.ACCEPTED
    assert city.post(accept).status == 409
    assert city.post(resolve).status == 200
    view = city.view()
    assert view["status"] == v.RESOLVED
    done = [(e["kind"], e.get("sender")) for e in view["timeline"]][-2:]
    assert done == [(v.ACCEPTED, HOLDER), (v.RESOLVED, HOLDER)]


def test_a_link_outlives_nothing_its_ttl_says(gridflow, smtp):
    """The link's lifetime is the option's, counted on operational time."""
    from tests.unit.test_action_links import HOLDER, PUBLIC, City

    city = City(gridflow)
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)
    signer = links.make_signer(links.LinkSecret(gridflow.engine), PUBLIC, now=past.timestamp)
    base = link_context(PUBLIC)
    context = type(base)(base.secret, signer, PUBLIC, lambda: past)
    adapter_for(smtp.url, context=context, link_ttl_hours=2).push(city.delivery(HOLDER))
    accept = links_in(smtp.received[0].text())["签收"][len(PUBLIC) :]
    assert city.post(accept).status == 410
    assert city.case_row().status == v.DISPATCHED
