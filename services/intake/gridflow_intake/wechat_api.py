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
import time
from typing import Any

import sqlalchemy as sa

from gridflow_common.secrets import SecretUnavailable, resolve
from gridflow_intake import bodies
from gridflow_intake import handlers as h
from gridflow_intake import progress as pg
from gridflow_intake import wechat_format as wf
from gridflow_intake import wechat_pending as wp
from gridflow_intake.channels import ChannelIntake
from gridflow_intake.models import reports

CHANNEL = "wechat"
TOKEN_REF_ENV = "GRIDFLOW_WECHAT_TOKEN_REF"
XML_MEDIA_TYPES = ("text/xml", "application/xml")


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

    def _wechat_pair(self, openid: str, kind: str, value: Any) -> Any:
        """The resident's waiting other half, or None (``value`` then waits for its pair;
        ``value`` None: nothing is kept)."""
        with self.runtime.work() as work:
            return wp.pair(work, openid, kind, value, self.runtime.operational_now())

    def _wechat_reply_text(self, call: Any, message: wf.Message) -> str:
        openid = message.from_user
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
            description = self._wechat_pair(openid, wp.LOCATION, location)
            if description is None:
                return "已收到您的位置，请发送文字描述您要反映的问题。"
            return self._wechat_report(call, message, description, location)
        if message.msg_type == "text" and message.content:
            address = {"address": message.content[:500]}
            try:
                h.resolve_location(self._jurisdiction(), address)  # type: ignore[attr-defined]
            except h.Rejected:
                # Not a place of the city: the text waits for a location, or takes a waiting one.
                location = self._wechat_pair(openid, wp.TEXT, message.content)
                if location is None:
                    return "已收到，请发送您的位置（点击“+”选择“位置”），以便我们派人处理。"
            else:
                # A text naming a place is a report on its own; a waiting location is preferred.
                location = self._wechat_pair(openid, wp.TEXT, None) or address
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
