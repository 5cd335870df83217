"""``sms``: text messages through an HTTP SMS gateway (短信网关).

Options: ``url`` (the gateway's send endpoint), ``credential_ref`` (``env:NAME`` or
``file:/path``: the gateway's API key, sent as ``Authorization: Bearer``), ``sign`` (the
signature the operator registered, 短信签名, default ``网格化管理``), ``timeout`` (seconds, 5).

Each message is one POST of JSON ``{"message_id", "to", "sign", "text"}`` with header
``Idempotency-Key: <message_id>``; a 2xx answer is taken as accepted (its ``id`` field, when
given, is kept as the external reference).
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gridflow_common.notify_channels import (
    PHONE,
    ChannelRefused,
    OutgoingMessage,
    SendResult,
)
from gridflow_notify.channels.http import HttpChannel, json_answer, post_json


class SmsConfig(Schema):
    url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    credential_ref = fields.String(load_default=None, allow_none=True)
    sign = fields.String(load_default="网格化管理")
    timeout = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=120))


class SmsChannel(HttpChannel):
    config_schema = SmsConfig
    contact = PHONE

    def send(self, message: OutgoingMessage) -> SendResult:
        if not message.address:
            raise ChannelRefused("no phone number")
        headers = {"Idempotency-Key": message.message_id}
        if self.options["credential_ref"]:
            headers["Authorization"] = (
                f"Bearer {self.context.secret(self.options['credential_ref'])}"
            )
        answer = post_json(
            self.client(),
            self.options["url"],
            {
                "message_id": message.message_id,
                "to": message.address,
                "sign": self.options["sign"],
                "text": message.text,
            },
            headers=headers,
            timeout=self.options["timeout"],
        )
        ref = json_answer(answer).get("id") if answer.content else None
        return SendResult(detail=f"accepted ({answer.status_code})", external_ref=_text(ref))


def _text(value: object) -> str | None:
    return str(value)[:200] if value is not None else None
