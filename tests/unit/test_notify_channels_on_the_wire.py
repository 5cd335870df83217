"""Each shipped notification channel against a real server on loopback, asserting what goes
over the wire: e-mail to aiosmtpd (headers, encoding, login by reference, 4xx/5xx), the WeChat
Work group robot's and the WeChat official account's JSON at real HTTP servers, and the generic
webhook whose HMAC signature the receiving server checks itself (not with Gridflow's code).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time

import pytest

from gridflow_common import notify_channels as nc
from gridflow_common import secrets
from tests.support.email_harness import SilentServer, SmtpServer
from tests.support.notify_receivers import HttpReceiver, Posted, Reply

WHEN = dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.timezone.utc)
TEXT = "【网格化管理】案件 GF-20261126-ABCDEFGHJK（井盖缺失）已超时，请尽快处理。"


def channel(name: str, options: dict) -> nc.NotifyChannel:
    return nc.load(name)(name, options, nc.ChannelContext(secret=secrets.resolve, now=lambda: WHEN))


def message(**changes) -> nc.OutgoingMessage:
    fields = dict(
        message_id="p-17|GF-20261126-ABCDEFGHJK|warning:GF-20261126-ABCDEFGHJK-1:red",
        case_id="GF-20261126-ABCDEFGHJK",
        kind="warning_red",
        subject="红色预警：井盖缺失",
        text=TEXT,
        urgent=True,
        address=None,
        recipient_name="李队长",
    )
    fields.update(changes)
    return nc.OutgoingMessage(**fields)


@pytest.fixture
def receiver():
    r = HttpReceiver()
    yield r
    r.close()


# -- e-mail over SMTP ---------------------------------------------------------------------------


@pytest.fixture
def smtp():
    server = SmtpServer(login=("gridflow", "mail-pass-9"))
    yield server
    server.close()


def test_email_goes_as_utf8_plain_text_with_a_stable_message_id_after_a_login_by_reference(
    smtp, monkeypatch
):
    monkeypatch.setenv("SMTP_PASSWORD", "mail-pass-9")
    email = channel(
        "email",
        {
            "smtp_url": smtp.url,
            "username": "gridflow",
            "password_ref": "env:SMTP_PASSWORD",
            "from_address": "notify@lucheng.example",
        },
    )
    email.send(message(address="li@urban.example"))
    email.send(message(address="li@urban.example"))  # the same message again (a crash's copy)
    first, second = smtp.received
    # One conversation, logged in once, kept for the next mail.
    assert smtp.logins == ["gridflow"]
    assert first.mail_from == "notify@lucheng.example"
    assert first.rcpt_tos == ["li@urban.example"]
    mail = first.message
    assert mail["Subject"] == "红色预警：井盖缺失"
    assert mail["From"].addresses[0].display_name == "网格化管理平台"
    assert mail["From"].addresses[0].addr_spec == "notify@lucheng.example"
    assert mail["To"] == "li@urban.example"
    assert mail["X-Gridflow-Case"] == "GF-20261126-ABCDEFGHJK"
    assert mail["X-Priority"] == "1"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert first.text().strip() == TEXT
    # Encoded on the wire (7-bit safe headers), the Chinese intact once decoded.
    assert b"=?utf-8?" in first.raw.lower()
    # One Message-ID for both copies: a mail system that drops duplicates shows one.
    assert mail["Message-ID"] == second.message["Message-ID"]
    assert mail["Message-ID"].endswith("@notify.gridflow>")
    other = channel(
        "email", {"smtp_url": smtp.url, "username": "gridflow", "password_ref": "env:SMTP_PASSWORD"}
    )
    other.send(message(address="li@urban.example", message_id="another"))
    assert smtp.received[2].message["Message-ID"] != mail["Message-ID"]


def test_email_answers_map_to_retry_or_refusal(smtp, monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", "mail-pass-9")
    email = channel(
        "email", {"smtp_url": smtp.url, "username": "gridflow", "password_ref": "env:SMTP_PASSWORD"}
    )
    smtp.defer_next()
    with pytest.raises(nc.ChannelUnavailable, match="451"):
        email.send(message(address="li@urban.example"))
    smtp.no_such_mailbox("gone@urban.example")
    with pytest.raises(nc.ChannelRefused, match="550"):
        email.send(message(address="gone@urban.example"))
    with pytest.raises(nc.ChannelRefused):
        email.send(message(address=None))
    smtp.go_down()
    with pytest.raises(nc.ChannelUnavailable, match="SMTP conversation failed"):
        email.send(message(address="li@urban.example"))
    smtp.come_back()
    email.send(message(address="li@urban.example"))
    assert [r.rcpt_tos for r in smtp.received] == [["li@urban.example"]]


def test_email_wrong_password_is_a_refusal_that_names_no_secret(smtp, monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", "not-the-password")
    email = channel(
        "email", {"smtp_url": smtp.url, "username": "gridflow", "password_ref": "env:SMTP_PASSWORD"}
    )
    with pytest.raises(nc.ChannelRefused) as refused:
        email.send(message(address="li@urban.example"))
    assert "not-the-password" not in refused.value.reason
    assert smtp.received == []


def test_email_to_a_server_that_never_answers_times_out_as_unavailable():
    silent = SilentServer()
    try:
        email = channel("email", {"smtp_url": silent.url, "timeout": 0.3})
        started = time.monotonic()
        with pytest.raises(nc.ChannelUnavailable):
            email.send(message(address="li@urban.example"))
        assert time.monotonic() - started < 5
    finally:
        silent.close()


# -- WeChat Work group robot -------------------------------------------------------------------


def test_wecom_robot_posts_the_robot_api_text_body_with_its_key_and_a_mention(
    receiver, monkeypatch
):
    monkeypatch.setenv("ROBOT_KEY", "693a91f6-7xxx-robot")
    robot = channel(
        "wecom_robot", {"url": receiver.url("/cgi-bin/webhook/send"), "key_ref": "env:ROBOT_KEY"}
    )
    robot.send(message(address="13912345678"))
    (posted,) = receiver.taken()
    assert posted.path == "/cgi-bin/webhook/send"
    assert posted.query == {"key": ["693a91f6-7xxx-robot"]}
    assert posted.headers["content-type"] == "application/json; charset=utf-8"
    assert posted.json() == {
        "msgtype": "text",
        "text": {"content": TEXT, "mentioned_mobile_list": ["13912345678"]},
    }
    # Chinese as UTF-8 on the wire, not \\u escapes.
    assert "井盖缺失".encode() in posted.body


def test_wecom_robot_markdown_carries_the_subject_and_stays_within_4096_bytes(
    receiver, monkeypatch
):
    monkeypatch.setenv("ROBOT_KEY", "k")
    robot = channel(
        "wecom_robot",
        {
            "url": receiver.url("/cgi-bin/webhook/send"),
            "key_ref": "env:ROBOT_KEY",
            "msgtype": "markdown",
        },
    )
    robot.send(message(text="很长的说明" * 1000))
    body = receiver.taken()[0].json()
    assert list(body) == ["msgtype", "markdown"] and body["msgtype"] == "markdown"
    content = body["markdown"]["content"]
    assert content.startswith("**红色预警：井盖缺失**\n很长的说明")
    assert len(content.encode("utf-8")) <= 4096
    # Cut on a character, not inside one.
    assert "\ufffd" not in content


def test_wecom_robot_errcodes_map_to_retry_or_refusal_and_never_repeat_the_key(
    receiver, monkeypatch
):
    monkeypatch.setenv("ROBOT_KEY", "secret-robot-key")
    robot = channel(
        "wecom_robot", {"url": receiver.url("/cgi-bin/webhook/send"), "key_ref": "env:ROBOT_KEY"}
    )
    receiver.then(
        Reply(200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
        Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url"}),
        Reply(503, None),
        Reply(429, None, (("Retry-After", "30"),)),
    )
    with pytest.raises(nc.ChannelUnavailable, match="45009") as busy:
        robot.send(message())
    with pytest.raises(nc.ChannelRefused, match="93000") as refused:
        robot.send(message())
    with pytest.raises(nc.ChannelUnavailable, match="503"):
        robot.send(message())
    with pytest.raises(nc.ChannelUnavailable) as limited:
        robot.send(message())
    assert limited.value.retry_after == 30.0
    assert "secret-robot-key" not in busy.value.reason + refused.value.reason


# -- the signed webhook -------------------------------------------------------------------------

WEBHOOK_KEY = "whk-5f1c0e2a"


def checking_receiver(seen_ids: set[str]):
    """A city system's receiver: verifies the signature with its own HMAC, refuses a stale
    timestamp, answers 200 to a message id it has seen (dropping the copy)."""

    def answer(posted: Posted) -> Reply:
        timestamp = posted.headers.get("x-gridflow-timestamp", "")
        given = posted.headers.get("x-gridflow-signature", "")
        expected = (
            "sha256="
            + hmac.new(
                WEBHOOK_KEY.encode(), timestamp.encode() + b"." + posted.body, hashlib.sha256
            ).hexdigest()
        )
        if not hmac.compare_digest(expected, given):
            return Reply(401, {"error": "bad signature"})
        if abs(time.time() - int(timestamp)) > 300:
            return Reply(401, {"error": "stale"})
        seen_ids.add(posted.headers["x-gridflow-message-id"])
        return Reply(200, {"ok": True})

    return answer


def test_webhook_body_and_signature_are_what_the_receiver_checks(monkeypatch):
    seen: set[str] = set()
    receiver = HttpReceiver(checking_receiver(seen))
    try:
        monkeypatch.setenv("WEBHOOK_KEY", WEBHOOK_KEY)
        hook = channel(
            "webhook", {"url": receiver.url("/gridflow/notices"), "secret_ref": "env:WEBHOOK_KEY"}
        )
        before = int(time.time())
        hook.send(message())
        (posted,) = receiver.taken()
        assert receiver.failed == []
        assert posted.path == "/gridflow/notices"
        assert posted.headers["content-type"] == "application/json; charset=utf-8"
        assert posted.json() == {
            "message_id": message().message_id,
            "case_id": "GF-20261126-ABCDEFGHJK",
            "kind": "warning_red",
            "subject": "红色预警：井盖缺失",
            "text": TEXT,
            "urgent": True,
            "recipient": "李队长",
        }
        assert before - 1 <= int(posted.headers["x-gridflow-timestamp"]) <= time.time() + 1
        assert seen == {message().message_id}
        # No contact travels: the receiver is the city's system, not the person.
        assert "13912345678" not in posted.body.decode()
    finally:
        receiver.close()


def test_webhook_signed_with_another_key_is_refused_by_the_receiver_and_not_retried(monkeypatch):
    receiver = HttpReceiver(checking_receiver(set()))
    try:
        monkeypatch.setenv("WEBHOOK_KEY", "a-key-the-receiver-does-not-hold")
        hook = channel("webhook", {"url": receiver.url("/h"), "secret_ref": "env:WEBHOOK_KEY"})
        with pytest.raises(nc.ChannelRefused, match="401"):
            hook.send(message())
        assert receiver.taken() == [] and len(receiver.failed) == 1
    finally:
        receiver.close()


def test_webhook_unreachable_is_unavailable(monkeypatch):
    receiver = HttpReceiver()
    url = receiver.url("/h")
    receiver.close()
    monkeypatch.setenv("WEBHOOK_KEY", WEBHOOK_KEY)
    hook = channel("webhook", {"url": url, "secret_ref": "env:WEBHOOK_KEY", "timeout": 1})
    with pytest.raises(nc.ChannelUnavailable, match="cannot reach"):
        hook.send(message())


# -- WeChat official account (客服消息) -----------------------------------------------------------


def test_wechat_official_sends_a_customer_service_text_to_the_openid(receiver, monkeypatch):
    monkeypatch.setenv("WX_TOKEN", "ACCESS_TOKEN_77")
    wechat = channel("wechat_official", {"api_base": receiver.url(""), "token_ref": "env:WX_TOKEN"})
    wechat.send(message(address="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", kind="resident_registered"))
    (posted,) = receiver.taken()
    assert posted.path == "/cgi-bin/message/custom/send"
    assert posted.query == {"access_token": ["ACCESS_TOKEN_77"]}
    assert posted.json() == {
        "touser": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "msgtype": "text",
        "text": {"content": TEXT},
    }
    assert json.loads(posted.body)["text"]["content"] == TEXT


def test_wechat_official_outside_48_hours_is_refused_so_sms_is_tried_and_busy_is_retried(
    receiver, monkeypatch
):
    monkeypatch.setenv("WX_TOKEN", "t")
    wechat = channel("wechat_official", {"api_base": receiver.url(""), "token_ref": "env:WX_TOKEN"})
    receiver.then(
        Reply(200, {"errcode": 45015, "errmsg": "response out of time limit"}),
        Reply(200, {"errcode": 42001, "errmsg": "access_token expired"}),
        Reply(200, {"errcode": -1, "errmsg": "system error"}),
    )
    with pytest.raises(nc.ChannelRefused, match="45015"):
        wechat.send(message(address="openid-1"))
    with pytest.raises(nc.ChannelUnavailable, match="42001"):
        wechat.send(message(address="openid-1"))
    with pytest.raises(nc.ChannelUnavailable, match="-1"):
        wechat.send(message(address="openid-1"))
    with pytest.raises(nc.ChannelRefused, match="no openid"):
        wechat.send(message(address=None))


# -- SMS gateway ---------------------------------------------------------------------------------


def test_sms_posts_to_the_gateway_with_bearer_and_idempotency_key(receiver, monkeypatch):
    monkeypatch.setenv("SMS_KEY", "sms-key-1")
    receiver.default = Reply(200, {"id": "gw-991"})
    sms = channel(
        "sms", {"url": receiver.url("/v1/sms"), "credential_ref": "env:SMS_KEY", "sign": "鹿城网格"}
    )
    result = sms.send(message(address="13912345678"))
    (posted,) = receiver.taken()
    assert posted.headers["authorization"] == "Bearer sms-key-1"
    assert posted.headers["idempotency-key"] == message().message_id
    assert posted.json() == {
        "message_id": message().message_id,
        "to": "13912345678",
        "sign": "鹿城网格",
        "text": TEXT,
    }
    assert result.external_ref == "gw-991"


def test_email_makes_a_new_connection_when_the_server_let_the_kept_one_go(smtp, monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", "mail-pass-9")
    email = channel(
        "email",
        {
            "smtp_url": smtp.url,
            "username": "gridflow",
            "password_ref": "env:SMTP_PASSWORD",
            "messages_per_connection": 2,
        },
    )
    email.send(message(address="a@urban.example"))
    smtp.go_down()  # the kept connection dies with the server
    smtp.come_back()
    email.send(message(address="b@urban.example"))  # not an outage: a new conversation
    email.send(message(address="c@urban.example"))
    email.send(message(address="d@urban.example"))  # two a connection: a third login
    email.close()
    assert [r.rcpt_tos[0] for r in smtp.received] == [
        "a@urban.example",
        "b@urban.example",
        "c@urban.example",
        "d@urban.example",
    ]
    assert smtp.logins == ["gridflow"] * 3
