"""Status back over AMQP: a department's system publishes a ``StatusMessageV1`` to the topic
exchange ``contracts.STATUS_EXCHANGE`` (routing key: its code); intake consumes the durable
queue ``contracts.STATUS_QUEUE`` (bound ``#``) and answers each message with a
``StatusReplyV1`` through its outbox on ``contracts.REPLY_EXCHANGE``, routing key the sender's
code, which lands in the sender's own ``reply_queue(code)``.

**Who sent it.** The message's ``user_id`` property: RabbitMQ refuses a publish whose
``user_id`` is not the connection's own user (unless that user has the ``impersonator`` tag,
which no department user gets), so ``gridflow-<code>`` is proof of ``<code>``
(``gridflow amqp-users`` makes those users: write on the status exchange only, read on their own
queues only). A system that cannot set ``user_id`` may instead carry its Gridflow credential in
the header ``gridflow-credential`` (resolved as a bearer token is over HTTP); it then speaks as
the one department or unit the credential answers for. Neither: nobody is answered (there is
no one to answer), the message is logged with what is known and dropped.

**What it answers.** Everything the HTTP endpoint answers (``department_status``): accepted
(with the status the word was taken as, or ``recognised`` false), or refused with the problem
by field: a body that is not JSON or not a status message, a unit that is not the sender's, a
case that does not exist or is none of the sender's, a case the sender does not hold. The reply
carries the message's ``correlation_id`` and ``message_id``. ``reply_to`` is not followed:
answers go to the sender's own reply queue, so no sender can write into another's.

**The embedded default** (``gridflow run``) has no broker, so no status exchange and no reply
queues: a department system talks to it over HTTP (``POST /api/v1/departments/{code}/updates``,
signed or with its credential), which takes the very same path.

**Nothing lost.** The message is acknowledged only after the unit of work that took it (and its
reply) committed; while the database (or routing, when it has to be asked who holds a case) is
out of reach, ``Transient`` is raised: the entrypoint tries again in place for a while, then
hands the message back.

**In order.** One sender's messages are taken in the order they were sent (``accepted`` then
``resolved`` sent back to back must not be applied together or the wrong way round): the queue
has a single active consumer (``contracts.STATUS_QUEUE_ARGUMENTS``), so one intake replica takes
the queue while the others stand by, and in that replica a sender's messages wait their turn
(``gridflow_common.in_order``) while other senders' run beside them. A message handed back
hands back the sender's messages already waiting behind it, so the broker redelivers them in
their order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError

from gridflow_common import contracts as c
from gridflow_common.domain import access as a
from gridflow_common.in_order import Turn
from gridflow_common.logging import get_logger
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import bodies
from gridflow_intake import department_status as ds
from gridflow_intake import handlers as h
from gridflow_intake import schemas as s
from gridflow_intake.access import HEADER_KINDS, Access, Caller
from gridflow_intake.peers import PeerUnavailable

log = get_logger(__name__)

CREDENTIAL_HEADER = "gridflow-credential"
# The audit log's action and the "address" of a message that came over the broker.
AUDIT_ACTION = "amqp_status_message"
ADDRESS = "amqp"
_SCHEMA = c.StatusMessageV1()
_REPLY_SCHEMA = c.StatusReplyV1()


class Transient(Exception):
    """The message could not be taken now (the database or routing is out of reach): hand it
    back to the broker unacknowledged, to be taken later."""


@dataclass(frozen=True)
class StatusDelivery:
    """One message from the status queue as it arrived: the raw body (never decoded by the
    transport: an undecodable one is still answered), the properties that matter, the headers
    and the routing key."""

    body: bytes
    user_id: str | None = None
    correlation_id: str | None = None
    message_id: str | None = None
    routing_key: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)
    redelivered: bool = False
    # Its place in its sender's line (``InOrder.turn``), given by the transport.
    turn: Turn = field(default_factory=Turn.alone, compare=False, repr=False)

    @property
    def sender_key(self) -> str:
        """Who it claims to come from, before anything is checked: its messages are taken in
        the order they arrived (``gridflow_common.in_order``). The credential is keyed by a
        digest, never kept as it is."""
        if self.user_id:
            return f"user:{self.user_id}"
        token = _text(self.headers.get(CREDENTIAL_HEADER))
        if token:
            return "credential:" + hashlib.sha256(token.strip().encode()).hexdigest()
        return "anonymous"

    @classmethod
    def from_kombu(cls, message: Any) -> StatusDelivery:
        body = message.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        properties = message.properties or {}
        return cls(
            body=bytes(body or b""),
            user_id=properties.get("user_id"),
            correlation_id=_text(properties.get("correlation_id")),
            message_id=_text(properties.get("message_id")),
            routing_key=(message.delivery_info or {}).get("routing_key"),
            headers=dict(message.headers or {}),
            redelivered=bool((message.delivery_info or {}).get("redelivered")),
        )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)[:200]


@dataclass(frozen=True)
class Sender:
    code: str
    caller: Caller


class StatusConsumer:
    """Takes one ``StatusDelivery``; the nameko entrypoint (service.py) and the tests call it."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        access: Access,
        holder_of: Callable[[str], dict | None] | None = None,
    ):
        self.runtime = runtime
        self.access = access
        self.holder_of = holder_of

    def take(self, delivery: StatusDelivery) -> str:
        """``accepted``, ``refused`` (both answered on the sender's reply queue) or ``dropped``
        (no sender to answer); ``Transient`` when it must be taken later."""
        try:
            sender = self._sender(delivery)
        except OperationalError as exc:
            raise Transient(f"the database is out of reach: {exc}") from None
        if sender is None:
            return "dropped"
        try:
            message = self._message(delivery)
        except h.Rejected as exc:
            return self._refuse(delivery, sender, None, None, exc)
        message_id = message.get("message_id") or delivery.message_id
        key = ds.message_key(None, {"message_id": message_id})
        try:
            with self.runtime.work() as work:
                status, answer = ds.take_status_message(
                    work,
                    sender.code,
                    sender.caller.principal,  # type: ignore[arg-type]
                    message,
                    key=key,
                    holder_of=self.holder_of,
                )
                reply = ds.reply_of(
                    status,
                    answer,
                    correlation_id=delivery.correlation_id,
                    message_id=message_id,
                    case_id=message["case_id"],
                )
                self._reply(work, sender.code, reply)
                self._audit(sender, "ok", message["case_id"], status, message_id, conn=work.db)
        except h.Rejected as exc:
            if exc.status >= 500:
                raise Transient(json.dumps(exc.errors, ensure_ascii=False)) from None
            return self._refuse(delivery, sender, message["case_id"], message_id, exc)
        except PeerUnavailable as exc:
            raise Transient(str(exc)) from None
        except OperationalError as exc:
            raise Transient(f"the database is out of reach: {exc}") from None
        self.runtime.outage.recovered()
        return "accepted"

    # -- who sent it ---------------------------------------------------------------------------

    def _sender(self, delivery: StatusDelivery) -> Sender | None:
        j = self.runtime.jurisdictions.active()[1]
        if delivery.user_id:
            user = str(delivery.user_id)
            code = user.removeprefix(c.AMQP_USER_PREFIX)
            if not user.startswith(c.AMQP_USER_PREFIX) or not ds.known_code(j, code):
                self._drop(delivery, f"amqp:{user}", "the user is no department's or unit's")
                return None
            principal = ds.department_principal(code, ds.AMQP)
            return Sender(code, ds.DepartmentCaller(principal, ADDRESS, department=code))
        token = _text(delivery.headers.get(CREDENTIAL_HEADER))
        if token:
            resolved = self.access.store.resolve(token.strip())
            if resolved is None or resolved[1]["kind"] not in HEADER_KINDS:
                self._drop(delivery, "anonymous", "the credential is not valid")
                return None
            principal, record = resolved
            speaks_as = a.default_sender(principal, j)
            if speaks_as is None or not a.speaks_for(principal, speaks_as, j):
                self._drop(
                    delivery, principal.label, "the credential answers for no department or unit"
                )
                return None
            return Sender(speaks_as, Caller(principal, ADDRESS, record))
        self._drop(delivery, "anonymous", f"neither user_id nor a {CREDENTIAL_HEADER} header")
        return None

    def _drop(self, delivery: StatusDelivery, actor: str, why: str) -> None:
        """Nobody to answer: logged and audited with what is known, and acknowledged (a message
        nobody can ever take would otherwise come back forever)."""
        log.warning(
            "status_message_dropped",
            why=why,
            actor=actor,
            routing_key=delivery.routing_key,
            correlation_id=delivery.correlation_id,
            message_id=delivery.message_id,
            size=len(delivery.body),
        )
        try:
            self.access.store.record(
                actor,
                AUDIT_ACTION,
                "refused",
                address=ADDRESS,
                detail={"why": why, "routing_key": delivery.routing_key},
            )
        except Exception:
            log.exception("audit_write_failed", action=AUDIT_ACTION, actor=actor)

    # -- what it says ----------------------------------------------------------------------------

    @staticmethod
    def _message(delivery: StatusDelivery) -> dict:
        data = bodies.load_json_object(delivery.body)
        try:
            return _SCHEMA.load(data)
        except ValidationError as exc:
            raise h.Rejected(400, s.flatten_errors(exc.messages)) from None

    # -- the answer -------------------------------------------------------------------------------

    def _refuse(
        self,
        delivery: StatusDelivery,
        sender: Sender,
        case_id: str | None,
        message_id: str | None,
        exc: h.Rejected,
    ) -> str:
        reply = ds.reply_of(
            exc.status,
            {"errors": exc.errors},
            correlation_id=delivery.correlation_id,
            message_id=message_id or delivery.message_id,
            case_id=case_id,
        )
        log.info(
            "status_message_refused",
            sender=sender.code,
            actor=sender.caller.actor,
            case_id=case_id,
            status=exc.status,
            errors=exc.errors,
        )
        try:
            with self.runtime.work() as work:
                self._reply(work, sender.code, reply)
                self._audit(sender, "refused", case_id, exc.status, message_id, conn=work.db)
        except OperationalError as db_exc:
            raise Transient(f"the database is out of reach: {db_exc}") from None
        return "refused"

    @staticmethod
    def _reply(work: Any, code: str, reply: dict) -> None:
        work.reply_to_department(code, _REPLY_SCHEMA.dump(reply))

    def _audit(
        self,
        sender: Sender,
        outcome: str,
        case_id: str | None,
        status: int,
        message_id: str | None,
        conn: Any,
    ) -> None:
        self.access.audit(
            sender.caller,
            AUDIT_ACTION,
            outcome,
            target=f"/api/v1/cases/{case_id}" if case_id else None,
            conn=conn,
            status=status,
            message_id=message_id,
        )
