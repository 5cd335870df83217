"""The WeChat official account callback in process: the platform's signature (wrong, missing,
stale: refused with nothing written), the URL check, a resident's location and text becoming
one report with a passive reply holding the case number and progress link, retries of one MsgId
making one report, and hostile XML (entities, external entities, NUL, oversize) refused."""

from __future__ import annotations

import time
from xml.etree import ElementTree as ET

import pytest

from gridflow_intake import wechat_format as wf
from tests.support.channels import POINT, call, counts, report_rows

TOKEN = "wechat-test-token-7d1f"
PATH = "/wechat/callback"
ACCOUNT = "gh_lucheng"
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"


@pytest.fixture
def api(gridflow, monkeypatch):
    monkeypatch.setenv("TEST_WECHAT_TOKEN", TOKEN)
    monkeypatch.setenv("GRIDFLOW_WECHAT_TOKEN_REF", "env:TEST_WECHAT_TOKEN")
    return gridflow.api()


def signed(token: str = TOKEN, at: float | None = None, nonce: str = "1234567") -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {
        "signature": wf.signature(token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
    }


def message(kind: str, msg_id: str, **fields: str) -> bytes:
    parts = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>"
        f"{parts}<MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def send(api, body: bytes, query: dict[str, str] | None = None, content_type="text/xml"):
    return call(
        api,
        "POST",
        PATH,
        body,
        content_type=content_type,
        query=signed() if query is None else query,
    )


def reply_text(answer) -> str:
    root = ET.fromstring(answer.encoded())
    assert root.findtext("ToUserName") == OPENID
    assert root.findtext("FromUserName") == ACCOUNT
    assert root.findtext("MsgType") == "text"
    return root.findtext("Content")


def test_the_platforms_url_check_echoes_only_when_signed(api):
    ok = call(api, "GET", PATH, query={**signed(), "echostr": "abc123"})
    assert ok.status == 200 and ok.encoded() == b"abc123"
    wrong = call(api, "GET", PATH, query={**signed("another-token"), "echostr": "abc123"})
    assert wrong.status == 403 and b"abc123" not in wrong.encoded()
    assert call(api, "GET", PATH, query={"echostr": "abc123"}).status == 401


def test_location_then_text_becomes_one_report_with_a_reply(gridflow, api):
    located = send(
        api,
        message(
            "location",
            "1001",
            Location_X=str(POINT["lat"]),
            Location_Y=str(POINT["lon"]),
            Scale="15",
            Label="鹿城",
        ),
    )
    assert located.status == 200
    assert "位置" in reply_text(located)
    assert counts(gridflow) == (0, 0)
    text = send(api, message("text", "1002", Content="路灯不亮，晚上很黑"))
    assert text.status == 200
    content = reply_text(text)
    [row] = report_rows(gridflow, "wechat")
    assert row["case_id"] in content and "/api/v1/progress/gfr_" in content
    assert row["reporter"] == {"wechat_openid": OPENID}
    assert row["external_id"] == "1002"

    # The platform retries one MsgId three times: one report, the same case in every reply.
    for _ in range(3):
        again = send(api, message("text", "1002", Content="路灯不亮，晚上很黑"))
        assert row["case_id"] in reply_text(again)
    assert len(report_rows(gridflow, "wechat")) == 1


def test_text_then_location_and_text_naming_a_place(gridflow, api):
    first = send(api, message("text", "2001", Content="垃圾堆在路边没人清理"))
    assert "位置" in reply_text(first) and counts(gridflow) == (0, 0)
    located = send(
        api,
        message(
            "location",
            "2002",
            Location_X=str(POINT["lat"]),
            Location_Y=str(POINT["lon"]),
            Label="x",
        ),
    )
    assert report_rows(gridflow, "wechat")[0]["case_id"] in reply_text(located)
    named = send(api, message("text", "2003", Content="青园社区门口井盖坏了"))
    assert "案件编号" in reply_text(named)
    assert len(report_rows(gridflow, "wechat")) == 2


@pytest.mark.parametrize(
    "query, status",
    [
        (lambda: signed("wrong-token"), 403),
        (lambda: {k: v for k, v in signed().items() if k != "signature"}, 401),
        (lambda: {}, 401),
        (lambda: signed(at=time.time() - 3600), 403),
        (lambda: {**signed(), "signature": "0" * 40}, 403),
    ],
    ids=["wrong_token", "no_signature", "nothing", "replayed_an_hour_later", "forged"],
)
def test_an_unsigned_or_stale_message_is_refused_with_no_side_effect(gridflow, api, query, status):
    body = message("text", "3001", Content="青园社区门口井盖坏了")
    answer = send(api, body, query=query())
    assert answer.status == status
    assert counts(gridflow) == (0, 0)


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><MsgType>text</MsgType>
<Content>&lol3;</Content><MsgId>9</MsgId></xml>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><MsgType>text</MsgType>
<Content>&xxe;</Content><MsgId>10</MsgId></xml>"""


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (BOMB, "text/xml", 400),
        (XXE, "text/xml", 400),
        (b"<xml><ToUserName>gh</ToUserName>\x00</xml>", "text/xml", 400),
        (b"<xml><unclosed>", "text/xml", 400),
        (b"<notxml/>", "text/xml", 400),
        (b"\xff\xfe<xml/>", "text/xml", 400),
        (message("text", "11", Content="x" * 20_000), "text/xml", 413),
        (b'{"MsgType": "text"}', "application/json", 415),
        (message("location", "12", Location_X="999", Location_Y="120.6"), "text/xml", 400),
    ],
    ids=[
        "billion_laughs",
        "xxe",
        "nul",
        "broken",
        "wrong_root",
        "not_utf8",
        "oversized",
        "json",
        "latitude_out_of_range",
    ],
)
def test_hostile_xml_is_refused(gridflow, api, body, content_type, status):
    answer = send(api, body, content_type=content_type)
    assert answer.status == status, answer.encoded()
    assert b"root:" not in answer.encoded()
    assert counts(gridflow) == (0, 0)


def test_an_unconfigured_callback_is_not_there(gridflow, monkeypatch):
    monkeypatch.delenv("GRIDFLOW_WECHAT_TOKEN_REF", raising=False)
    answer = call(
        gridflow.api(),
        "POST",
        PATH,
        message("text", "1", Content="x"),
        content_type="text/xml",
        query=signed(),
    )
    assert answer.status == 404 and "wechat" in answer.body["errors"]
    assert counts(gridflow) == (0, 0)
