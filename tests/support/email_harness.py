"""A real SMTP server for the e-mail adapter's tests (aiosmtpd on a free loopback port), and the
adapter's harness for the contract suite (``--harness=tests.support.email_harness:contract_harness``).

The server keeps every message it accepted, in order, duplicates included; on command it
refuses the next message for good (550), answers "try later" (451), stops listening (down)
and listens again on the same port (back). It can ask for a login, to check the password the
adapter gets by reference.
"""

from __future__ import annotations

import datetime as dt
import email
import secrets
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as DEFAULT_POLICY
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from gridflow_common import contracts as c
from gridflow_common import links
from gridflow_common import secrets as gridflow_secrets
from gridflow_common.adapters import (
    KIND_CASE,
    LEAD,
    AdapterConfig,
    AdapterContext,
    Delivery,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=DEFAULT_POLICY)  # type: ignore[return-value]

    def text(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        assert part is not None, f"no text/{subtype} part"
        return part.get_content()


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    # What every RCPT of the next message is answered (once, for that message): None is 250.
    next_refusal: str | None = None
    # Mailboxes that do not exist here: address -> what every RCPT to it is answered.
    unknown_mailboxes: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            envelope.refusal, self.next_refusal = self.next_refusal, None
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            unknown = self.unknown_mailboxes.get(address)
        refusal = getattr(envelope, "refusal", None) or unknown
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1, on a port of its own that it keeps across down and back."""

    def __init__(self, login: tuple[str, str] | None = None):
        self.port = free_port()
        self.handler = _Handler()
        self.login = login
        self.logins: list[str] = []
        self._controller: Controller | None = None
        self.come_back()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.login is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.login
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def refuse_next(self, answer: str = "550 5.1.1 mailbox unavailable") -> None:
        with self.handler.lock:
            self.handler.next_refusal = answer

    def no_such_mailbox(self, address: str) -> None:
        with self.handler.lock:
            self.handler.unknown_mailboxes[address] = f"550 5.1.1 <{address}>: no such mailbox"

    def defer_next(self) -> None:
        self.refuse_next("451 4.3.0 try again later")

    def go_down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def come_back(self) -> None:
        if self._controller is not None:
            return
        options: dict[str, Any] = {}
        if self.login is not None:
            options = dict(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=10, **options
        )
        self._controller.start()

    def close(self) -> None:
        self.go_down()


class SilentServer:
    """Takes connections and never says a word: an SMTP server that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()


# -- deliveries as the departments service hands them over ---------------------------------------

CST = dt.timezone(dt.timedelta(hours=8))


def department_message(
    case_id: str = "GF-20261126-ABCDEFGHJK",
    unit: str = "urban_management-330302104",
    role: str = LEAD,
    *,
    delivery_id: str = "d-1",
    assignment_id: str | None = None,
    kind: str = KIND_CASE,
    **changes: Any,
) -> dict[str, Any]:
    """A DepartmentMessageV2 as the departments service renders it (checked against the
    schema, so these tests and the contract cannot drift apart)."""
    message: dict[str, Any] = {
        "message_version": c.DEPARTMENT_MESSAGE_VERSION,
        "kind": kind,
        "change": None,
        "delivery_id": delivery_id,
        "case_id": case_id,
        "assignment_id": assignment_id or f"{case_id}-1",
        "role": role,
        "unit": unit,
        "department": "urban_management",
        "handler": "urban_management-330302104",
        "lead": "urban_management",
        "assisting": ["housing", "fire"],
        "tier": "street",
        "reason": "new",
        "category": "component.streetlight",
        "category_name": "路灯不亮",
        "description": "藤桥戍浦社区门口的路灯不亮，电话138****0002",
        "location": {
            "point": {"lat": 28.05, "lon": 120.64},
            "grid": "戍浦社区第一网格",
            "community": "戍浦社区",
            "street": "藤桥镇",
            "address": "藤桥镇戍浦社区门口",
        },
        "area_code": "330302104001001",
        "due_at": "2026-11-27T17:30:00+08:00",
        "colour": "green",
        "reporter": None,
        "dispatched_at": "2026-11-26T09:00:00+08:00",
        "status_back": {
            "exchange": c.STATUS_EXCHANGE,
            "routing_key": unit,
            "reply_queue": c.reply_queue(unit),
            "http": "http://gridflow.test/api/v1/departments/urban_management/updates",
        },
    }
    message.update(changes)
    errors = c.DepartmentMessageV2().validate(message)
    assert not errors, errors
    return message


def delivery_of(message: Mapping[str, Any]) -> Delivery:
    return Delivery(
        delivery_id=message["delivery_id"],
        kind=message["kind"],
        case_id=message["case_id"],
        assignment_id=message["assignment_id"],
        unit=message["unit"],
        department=message["department"],
        role=message["role"],
        message=dict(message),
    )


def link_context(
    public_url: str = "http://gridflow.test", link_secret: links.LinkSecret | None = None
) -> AdapterContext:
    """What the departments service lends the adapter, with a link key of its own unless
    given the one intake verifies with."""
    secret = link_secret or links.LinkSecret(
        None, {links.LINK_SECRET_ENV: secrets.token_urlsafe(32)}
    )
    return AdapterContext(
        secret=gridflow_secrets.resolve,
        sign_link=links.make_signer(secret, public_url),
        public_url=public_url,
        now=lambda: dt.datetime.now(dt.timezone.utc),
    )


# -- the contract suite's harness ------------------------------------------------------------------


class EmailHarness:
    """The protocol of the contract suite (docs: the kit's suite), for ``email``."""

    unit = "urban_management-330302104"

    def __init__(self) -> None:
        self.server = SmtpServer()
        self._context = link_context()

    def config(self) -> AdapterConfig:
        return AdapterConfig(
            code=self.unit,
            adapter="email",
            endpoint="mailto:duty@station.example.cn",
            options={"smtp_url": self.server.url, "timeout": 2.0},
        )

    def context(self) -> AdapterContext:
        return self._context

    def received(self) -> list[dict]:
        out = []
        for mail in self.server.received:
            message = mail.message
            out.append(
                {
                    "delivery_id": message["X-Gridflow-Delivery"],
                    # A mail's idempotency key is its Message-ID: the same for every copy.
                    "idempotency_key": message["Message-ID"],
                    "message": {
                        "case_id": message["X-Gridflow-Case"],
                        "kind": message["X-Gridflow-Kind"],
                        "role": message["X-Gridflow-Role"],
                        "subject": message["Subject"],
                        "text": mail.text(),
                    },
                }
            )
        return out

    def go_down(self) -> None:
        self.server.go_down()

    def come_back(self) -> None:
        self.server.come_back()

    def refuse_next(self) -> None:
        self.server.refuse_next()

    def status_body(self, delivery: Delivery, word: str, note: str | None) -> Mapping[str, Any]:
        return {"case_id": delivery.case_id, "status": word, "note": note, "unit": delivery.unit}

    def set_status(
        self, delivery: Delivery, external_ref: str | None, word: str, note: str | None
    ) -> None:
        # E-mail is not asked for status (polls = False): nothing to change.
        return None

    def close(self) -> None:
        self.server.close()


def contract_harness() -> EmailHarness:
    return EmailHarness()


__all__ = [
    "EmailHarness",
    "Received",
    "SilentServer",
    "SmtpServer",
    "contract_harness",
    "delivery_of",
    "department_message",
    "free_port",
    "link_context",
]
