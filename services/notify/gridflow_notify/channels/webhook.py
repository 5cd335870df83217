"""``webhook``: a generic signed webhook; the city's own system receives the message as JSON.

Options: ``url``, ``secret_ref`` (``env:``/``file:`` reference to the shared HMAC key),
``timeout`` (seconds, 5).

The body is JSON ``{"message_id", "case_id", "kind", "subject", "text", "urgent",
"recipient"}`` (``recipient``: the person's name, never a contact). Headers:
``X-Gridflow-Timestamp`` (Unix seconds), ``X-Gridflow-Signature`` =
``sha256=`` + hex HMAC-SHA256(key, timestamp + "." + body) and ``X-Gridflow-Message-Id`` (the
same on every try). A receiver checks the signature, refuses a timestamp older than a few
minutes (a replay) and drops a message id it has seen.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from marshmallow import Schema, fields, validate

from gridflow_common.notify_channels import OutgoingMessage, SendResult
from gridflow_notify.channels.http import HttpChannel, post_json

TIMESTAMP_HEADER = "X-Gridflow-Timestamp"
SIGNATURE_HEADER = "X-Gridflow-Signature"
MESSAGE_ID_HEADER = "X-Gridflow-Message-Id"


class WebhookConfig(Schema):
    url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    secret_ref = fields.String(required=True)
    timeout = fields.Float(load_default=5.0, validate=validate.Range(min=0.1, max=120))


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(key: bytes, timestamp: str, body: bytes, given: str) -> bool:
    """The receiver's check (tests and integrators): ``given`` is the body's signature."""
    return hmac.compare_digest(signature(key, timestamp, body), given)


class WebhookChannel(HttpChannel):
    config_schema = WebhookConfig
    contact = None

    def send(self, message: OutgoingMessage) -> SendResult:
        key = self.context.secret(self.options["secret_ref"]).encode("utf-8")
        body = json.dumps(
            {
                "message_id": message.message_id,
                "case_id": message.case_id,
                "kind": message.kind,
                "subject": message.subject,
                "text": message.text,
                "urgent": message.urgent,
                "recipient": message.recipient_name,
            },
            ensure_ascii=False,
        ).encode("utf-8")
        timestamp = str(int(time.time()))
        answer = post_json(
            self.client(),
            self.options["url"],
            body,
            headers={
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: signature(key, timestamp, body),
                MESSAGE_ID_HEADER: message.message_id,
            },
            timeout=self.options["timeout"],
        )
        return SendResult(detail=f"accepted ({answer.status_code})")
