"""``email``: the message as a plain-text UTF-8 mail over SMTP.

Options: ``smtp_url`` (``smtp://host:port`` or ``smtps://host:port``), ``starttls`` (false),
``username`` and ``password_ref`` (``env:``/``file:``) when the server wants a login,
``from_address`` (``noreply@gridflow.invalid``), ``timeout`` (seconds for the conversation, 10).

Each of the delivery worker's threads keeps its SMTP connection (logged in) for the next mail,
checked with NOOP when it has been idle a while (``IDLE_CHECK_SECONDS``), made again once
when the server let it go before taking the mail (SMTPServerDisconnected), and given up after
``messages_per_connection`` (100) mails or any error: against a real server a TLS handshake
and a login per mail cost more than the mail (on loopback aiosmtpd, with neither, ``make
bench-notify`` finds the two ways within its noise).

The Message-ID is made from the message id, the same on every try, so a mail system that drops
duplicates shows one mail when Gridflow sent it twice. SMTP answers map to the contract: no
connection, a timeout or a 4xx is ``ChannelUnavailable``; a 5xx is ``ChannelRefused``.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import threading
import time
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, validate, validates

from gridflow_common.notify_channels import (
    EMAIL,
    ChannelRefused,
    ChannelUnavailable,
    NotifyChannel,
    OutgoingMessage,
    SendResult,
)

SENDER_NAME = "网格化管理平台"
# A connection idle this long is asked NOOP before reuse; one used more recently is trusted (a
# NOOP per mail is a round trip per mail, measured at about half the channel's rate).
IDLE_CHECK_SECONDS = 5.0


class EmailConfig(Schema):
    smtp_url = fields.String(required=True)
    starttls = fields.Boolean(load_default=False)
    username = fields.String(load_default=None, allow_none=True)
    password_ref = fields.String(load_default=None, allow_none=True)
    from_address = fields.Email(load_default="noreply@gridflow.invalid")
    timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=300))
    messages_per_connection = fields.Integer(
        load_default=100, validate=validate.Range(min=1, max=100000)
    )

    @validates("smtp_url")
    def _url(self, value: str, **_: object) -> None:
        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValidationError("must be smtp://host:port or smtps://host:port")
        if parts.username or parts.password:
            raise ValidationError("must not carry a user or password: use password_ref")


class EmailChannel(NotifyChannel):
    config_schema = EmailConfig
    contact = EMAIL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._local = threading.local()
        self._open: set[smtplib.SMTP] = set()
        self._open_lock = threading.Lock()

    def compose(self, message: OutgoingMessage) -> EmailMessage:
        mail = EmailMessage(policy=SMTP_POLICY)
        mail["Subject"] = message.subject
        mail["From"] = Address(display_name=SENDER_NAME, addr_spec=self.options["from_address"])
        mail["To"] = message.address or ""
        mail["Date"] = format_datetime(self.context.now())
        digest = hashlib.sha256(message.message_id.encode("utf-8")).hexdigest()[:32]
        mail["Message-ID"] = f"<{digest}@notify.gridflow>"
        mail["X-Gridflow-Message"] = message.message_id
        mail["X-Gridflow-Case"] = message.case_id
        if message.urgent:
            mail["X-Priority"] = "1"
        mail.set_content(message.text, charset="utf-8")
        return mail

    def _connect(self) -> smtplib.SMTP:
        parts = urlsplit(self.options["smtp_url"])
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
        timeout = self.options["timeout"]
        client: smtplib.SMTP
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(
                parts.hostname, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(parts.hostname, port, timeout=timeout)
        try:
            if self.options["starttls"]:
                client.starttls(context=ssl.create_default_context())
            if self.options["username"]:
                password = self.context.secret(self.options["password_ref"] or "")
                client.login(self.options["username"], password)
        except BaseException:
            _quit(client)
            raise
        with self._open_lock:
            self._open.add(client)
        return client

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        """This thread's connection, and whether it is a kept one: kept while it has carried
        fewer than ``messages_per_connection`` mails and, idle a while, still answers NOOP."""
        client = getattr(self._local, "client", None)
        if client is not None and self._local.sent < self.options["messages_per_connection"]:
            if time.monotonic() - self._local.used < IDLE_CHECK_SECONDS:
                return client, True
            try:
                if client.noop()[0] == 250:
                    return client, True
            except (OSError, smtplib.SMTPException):
                pass
        self._drop()
        self._local.client = self._connect()
        self._local.sent = 0
        self._local.used = time.monotonic()
        return self._local.client, False

    def _drop(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            with self._open_lock:
                self._open.discard(client)
            _quit(client)

    def close(self) -> None:
        with self._open_lock:
            clients, self._open = list(self._open), set()
        for client in clients:
            _quit(client)

    def send(self, message: OutgoingMessage) -> SendResult:
        if not message.address:
            raise ChannelRefused("no e-mail address")
        mail = self.compose(message)
        try:
            client, kept = self._connection()
            try:
                try:
                    refused = client.send_message(mail)
                except smtplib.SMTPServerDisconnected:
                    if not kept:
                        raise
                    # The server let the kept connection go: once more, on a new one.
                    self._drop()
                    client, _ = self._connection()
                    refused = client.send_message(mail)
                self._local.sent += 1
                self._local.used = time.monotonic()
            except BaseException:
                # Whatever state the conversation is in, the next mail starts a new one.
                self._drop()
                raise
        except smtplib.SMTPRecipientsRefused as exc:
            raise _by_code(min(code for code, _ in exc.recipients.values()), "recipient") from None
        except smtplib.SMTPResponseException as exc:
            raise _by_code(exc.smtp_code, "message") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelUnavailable(f"SMTP conversation failed ({type(exc).__name__})") from None
        if refused:
            raise ChannelRefused("the recipient was refused")
        return SendResult(detail="accepted by the SMTP server")


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def _by_code(code: int, what: str) -> Exception:
    if 400 <= code < 500:
        return ChannelUnavailable(f"the SMTP server deferred the {what} ({code})")
    return ChannelRefused(f"the SMTP server refused the {what} ({code})")
