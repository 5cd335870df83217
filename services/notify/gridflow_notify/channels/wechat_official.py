"""``wechat_official``: a customer-service text message (客服消息) from the city's WeChat
official account to a resident who reported through it.

Options: ``api_base`` (default ``https://api.weixin.qq.com``), ``token_ref`` (``env:``/``file:``
reference to the account's access token, kept fresh by whatever the city runs for it),
``timeout`` (seconds, 5).

POST ``{api_base}/cgi-bin/message/custom/send?access_token=...`` with
``{"touser": openid, "msgtype": "text", "text": {"content": ...}}``; the answer is
``{"errcode": 0}`` on success. WeChat lets an account write to a resident only within 48 hours
of the resident's last message (errcode 45015): a refusal, so the next channel (SMS) is tried.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridflow_common.notify_channels import (
    WECHAT_OPENID,
    ChannelRefused,
    ChannelUnavailable,
    OutgoingMessage,
    SendResult,
)
from gridflow_notify.channels.http import HttpChannel, json_answer, post_json

SEND_PATH = "/cgi-bin/message/custom/send"
# busy, an expired token (40001, 42001: the city's refresher will have a new one soon)
_TRANSIENT = {-1, 40001, 42001, 45009}


class WechatOfficialConfig(Schema):
    api_base = fields.Url(
        load_default="https://api.weixin.qq.com", require_tld=False, schemes={"http", "https"}
    )
    token_ref = fields.String(required=True)
    timeout = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=120))


class WechatOfficialChannel(HttpChannel):
    config_schema = WechatOfficialConfig
    contact = WECHAT_OPENID

    def send(self, message: OutgoingMessage) -> SendResult:
        if not message.address:
            raise ChannelRefused("no openid")
        token = self.context.secret(self.options["token_ref"])
        answer = post_json(
            self.client(),
            self.options["api_base"].rstrip("/") + SEND_PATH,
            {"touser": message.address, "msgtype": "text", "text": {"content": message.text}},
            params={"access_token": token},
            timeout=self.options["timeout"],
        )
        data = json_answer(answer)
        code = data.get("errcode", 0)
        if code == 0:
            return SendResult(detail="sent")
        reason = f"WeChat answered errcode {code}"
        if code in _TRANSIENT:
            raise ChannelUnavailable(reason)
        raise ChannelRefused(reason)
