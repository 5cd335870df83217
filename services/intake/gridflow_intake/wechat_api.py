"""The WeChat official account callback (``GET``/``POST /wechat/callback``): the platform's
URL check (echostr) and residents' messages turned into reports (channel ``wechat``, reporter
``wechat_openid``), answered with a passive reply holding the case number and progress link.

The platform cannot carry a Gridflow key: its signature (with the account's token, configured by
reference in ``GRIDFLOW_WECHAT_TOKEN_REF``: ``env:NAME`` or ``file:/path``) is the credential,
checked before anything is read or written. A text with a location sent shortly before (or a
location after a text) is one report; a text alone is a report when it names a place of the
jurisdiction. The platform retries a message three times with one MsgId: the MsgId is the
report's external id, so a retry answers the same case.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import sqlalchemy as sa

from gridflow_common.secrets import SecretUnavailable, resolve
from gridflow_intake import bodies
from gridflow_intake import handlers as h
from gridflow_intake import progress as pg
from gridflow_intake import wechat_format as wf
from gridflow_intake.channels import ChannelIntake
from gridflow_intake.models import reports

CHANNEL = "wechat"
TOKEN_REF_ENV = "GRIDFLOW_WECHAT_TOKEN_REF"
# How long a resident's last location (or last text) waits for the other half of a report.
PAIRING_SECONDS = 600
MAX_REMEMBERED = 10_000
XML_MEDIA_TYPES = ("text/xml", "application/xml")


class Pending:
    """The last location and text per openid, briefly, in this process (a resident's two
    messages reach one replica in the embedded default; across replicas see docs/channels.md)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.locations: dict[str, tuple[float, dict]] = {}
        self.texts: dict[str, tuple[float, str]] = {}

    def _fresh(self, table: dict, openid: str) -> Any:
        entry = table.get(openid)
        if entry is None or time.monotonic() - entry[0] > PAIRING_SECONDS:
            table.pop(openid, None)
            return None
        return entry[1]

    def put(self, table: dict, openid: str, value: Any) -> None:
        with self.lock:
            if len(table) >= MAX_REMEMBERED:
                table.clear()
            table[openid] = (time.monotonic(), value)

    def take(self, table: dict, openid: str) -> Any:
        with self.lock:
            value = self._fresh(table, openid)
            table.pop(openid, None)
            return value


def _token() -> str:
    ref = os.environ.get(TOKEN_REF_ENV)
    if not ref:
        raise SecretUnavailable(f"{TOKEN_REF_ENV} is not set")
    return resolve(ref)


class WeChatEndpoints(ChannelIntake):
    """Mixed into IntakeApi."""

    def _wechat_checked(self, call: Any) -> dict[str, str]:
        query = {k: call.request.args.get(k, "") for k in call.request.args}
        try:
            token = _token()
        except SecretUnavailable as exc:
            # No account configured: there is no callback here (not a server fault).
            raise h.Rejected(
                404, {"wechat": [f"no WeChat account is configured here: {exc}"]}
            ) from None
        try:
            wf.check_signature(token, query, time.time())
        except wf.WeChatRefused as exc:
            self.access.limit_failed_credential(call.caller.address)
            from gridflow_intake.access import Forbidden, Unauthenticated

            if exc.status == 401:
                raise Unauthenticated(f"{exc.field}: {exc}") from None
            raise Forbidden(str(exc), field=exc.field) from None
        return query

    def get_wechat_callback(self, call: Any) -> Any:
        from gridflow_intake.api import Answer

        query = self._wechat_checked(call)
        echostr = query.get("echostr", "")
        if not echostr or len(echostr) > 128 or not echostr.isprintable():
            raise h.Rejected(400, {"echostr": ["the platform's echostr is required"]})
        return Answer(200, echostr.encode("utf-8"), "text/plain; charset=utf-8")

    def post_wechat_callback(self, call: Any) -> Any:
        from gridflow_intake.api import Answer

        self._wechat_checked(call)
        request = call.request
        if request.mimetype not in XML_MEDIA_TYPES:
            raise h.Rejected(415, {"content_type": ["send text/xml (the platform's message)"]})
        body = bodies.read_body(request, wf.MAX_BODY_BYTES)
        try:
            message = wf.parse_message(body)
        except wf.WeChatRefused as exc:
            raise h.Rejected(exc.status, {exc.field: [str(exc)]}) from None
        text = self._wechat_reply_text(call, message)
        return Answer(
            200, wf.reply(message, text, int(time.time())), "application/xml; charset=utf-8"
        )

    def _wechat_pending(self) -> Pending:
        return self.runtime.extras.setdefault("wechat_pending", Pending())

    def _wechat_reply_text(self, call: Any, message: wf.Message) -> str:
        openid = message.from_user
        pending = self._wechat_pending()
        if message.msg_id:
            with self.runtime.work() as work:
                known = work.db.execute(
                    sa.select(reports.c.case_id).where(
                        reports.c.channel == CHANNEL, reports.c.external_id == message.msg_id
                    )
                ).scalar()
            if known:
                return f"您反映的问题已受理，案件编号 {known}。"
        if message.msg_type == "location":
            location: dict[str, Any] = {"lat": message.lat, "lon": message.lon}
            description = pending.take(pending.texts, openid)
            if description is None:
                pending.put(pending.locations, openid, location)
                return "已收到您的位置，请发送文字描述您要反映的问题。"
            return self._wechat_report(call, message, description, location)
        if message.msg_type == "text" and message.content:
            location = pending.take(pending.locations, openid)  # type: ignore[no-redef]
            if location is None:
                location = {"address": message.content[:500]}
                try:
                    h.resolve_location(self._jurisdiction(), location)  # type: ignore[attr-defined]
                except h.Rejected:
                    pending.put(pending.texts, openid, message.content)
                    return "已收到，请发送您的位置（点击“+”选择“位置”），以便我们派人处理。"
            return self._wechat_report(call, message, message.content, location)
        if message.msg_type == "event" and message.event == "subscribe":
            return "欢迎关注！发送文字描述问题并发送位置，即可反映城市管理问题。"
        return "暂只受理文字和位置消息。"

    def _wechat_report(
        self, call: Any, message: wf.Message, description: str, location: dict
    ) -> str:
        # The public channel's budget, per resident: one openid cannot flood the city.
        self.access._spend(
            f"wechat:{message.from_user}", self.access.limits.public_reports, "this WeChat user"
        )
        report = {
            "channel": CHANNEL,
            "external_id": message.msg_id,
            "description": description[:2000],
            "category": None,
            "location": location,
            "reporter": {"wechat_openid": message.from_user},
        }
        try:
            status, answer, token = self.register_channel_report(call, report)
        except h.Rejected as exc:
            why = "；".join(w for ws in exc.errors.values() for w in ws)
            return f"未能受理：{why}"
        linked = pg.link_in_answer(answer, call.request.host_url, token)
        text = f"您反映的问题已受理，案件编号 {answer['case_id']}。"
        if linked.get("progress_url"):
            text += f"进度查询：{linked['progress_url']}"
        return text
