"""``wecom_robot``: a WeChat Work group robot (企业微信群机器人) posts the message in a group.

Options: ``url`` (the robot's webhook, ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send``),
``key_ref`` (``env:``/``file:`` reference to the robot's key, sent as ``?key=``: the key is the
robot's only credential, so it is never written in the city's data), ``msgtype`` (``text`` or
``markdown``), ``mention_mobiles`` (whether a text message @-mentions the person by phone),
``timeout`` (seconds, 5).

The body is the robot API's: ``{"msgtype": "text", "text": {"content": ..., "mentioned_mobile_list":
[...]}}`` or ``{"msgtype": "markdown", "markdown": {"content": ...}}``. The robot answers 200 with
``{"errcode": 0}`` on success; another errcode is a refusal, except 45009 (too many calls),
-1 (system busy) which are tried again.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridflow_common.notify_channels import (
    ChannelRefused,
    ChannelUnavailable,
    OutgoingMessage,
    SendResult,
)
from gridflow_notify.channels.http import HttpChannel, json_answer, post_json

# errcodes the robot API uses for "too many calls" and "busy": worth another try.
_TRANSIENT = {-1, 45009}
# A markdown message is limited to 4096 bytes, a text one to 2048.
_LIMITS = {"text": 2048, "markdown": 4096}


class WecomRobotConfig(Schema):
    url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    key_ref = fields.String(required=True)
    msgtype = fields.String(load_default="text", validate=validate.OneOf(("text", "markdown")))
    mention_mobiles = fields.Boolean(load_default=True)
    timeout = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=120))


def robot_body(message: OutgoingMessage, msgtype: str, mention: bool) -> dict:
    content = message.text
    if msgtype == "markdown":
        content = f"**{message.subject}**\n{message.text}"
    encoded = content.encode("utf-8")[: _LIMITS[msgtype]]
    content = encoded.decode("utf-8", "ignore")
    if msgtype == "markdown":
        return {"msgtype": "markdown", "markdown": {"content": content}}
    text: dict = {"content": content}
    if mention and message.address:
        text["mentioned_mobile_list"] = [message.address]
    return {"msgtype": "text", "text": text}


class WecomRobotChannel(HttpChannel):
    config_schema = WecomRobotConfig
    # The robot posts in a group; a phone, when the person has one, is @-mentioned.
    contact = None

    def send(self, message: OutgoingMessage) -> SendResult:
        key = self.context.secret(self.options["key_ref"])
        body = robot_body(message, self.options["msgtype"], self.options["mention_mobiles"])
        answer = post_json(
            self.client(),
            self.options["url"],
            body,
            params={"key": key},
            timeout=self.options["timeout"],
        )
        data = json_answer(answer)
        code = data.get("errcode")
        if code == 0:
            return SendResult(detail="posted in the group")
        reason = f"the robot answered errcode {code}"
        if code in _TRANSIENT:
            raise ChannelUnavailable(reason)
        raise ChannelRefused(reason)
