"""The contract of a notification channel (通知渠道): how a message reaches a person.

A channel is a class that subclasses ``NotifyChannel``, implements ``send`` and names a
marshmallow ``config_schema`` for its options; it is installed under a name in the entry-point
group ``gridflow.notify_channels`` and loaded by that name (``load``), refused loudly when it
does not keep the contract (``gridflow_common.plugins``, the loader department adapters use).

``send`` either returns a ``SendResult`` or raises one of two errors, and that choice drives
the retries (``gridflow_notify.delivery``):

- ``ChannelUnavailable`` (transient): the gateway did not answer, timed out, said 5xx / 429 /
  SMTP 4xx. The message is tried again on this channel after a backoff (operational time).
- ``ChannelRefused`` (permanent): the gateway refused this message for good (bad number, no
  such mailbox, a 4xx other than 429, a credential that names nothing). Retrying cannot help;
  the message goes on to the person's next channel, or fails when there is none.

A channel never logs nor repeats a secret or a whole contact; its error texts name neither.
``message.message_id`` is the same on every try of one message: a channel passes it on as an
idempotency key (a header, a Message-ID), so a receiver that drops duplicates sees one message
even when a crash between sending and recording makes Gridflow send it twice.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from marshmallow import Schema

from gridflow_common import plugins

ENTRY_POINT_GROUP = "gridflow.notify_channels"
_BASE = "gridflow_common.notify_channels.NotifyChannel"

# Which contact of a person or reporter a channel writes to (None: the channel posts to a place
# of its own, a group robot or a webhook, and needs none).
PHONE = "phone"
EMAIL = "email"
WECHAT_OPENID = "wechat_openid"
CONTACT_FIELDS = (PHONE, EMAIL, WECHAT_OPENID)


class ChannelContractError(TypeError):
    """A channel that cannot be used: not installed, not importable, or not keeping the
    contract."""


class ChannelUnavailable(Exception):
    """Transient: try again later (``retry_after`` seconds at the earliest, when the gateway
    said)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ChannelRefused(Exception):
    """Permanent: this message cannot go through this channel; the next channel is tried."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to one person through one channel."""

    message_id: str  # the same on every try: the receiver's idempotency key
    case_id: str
    kind: str  # the template's kind (registered, dispatched, warning_red, ...)
    subject: str
    text: str
    urgent: bool = False
    # The contact the channel writes to (a phone, an e-mail address, an openid); None for a
    # channel that needs none.
    address: str | None = None
    recipient_name: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    detail: str = ""
    external_ref: str | None = None


@dataclass(frozen=True)
class ChannelContext:
    """What Gridflow lends a channel: the secret resolver (``env:``/``file:`` references) and
    the operational clock."""

    secret: Callable[[str], str]
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)


class EmptyConfig(Schema):
    pass


class NotifyChannel(abc.ABC):
    """Subclass this, implement ``send``, set ``config_schema`` and ``contact``, and name the
    class in the entry-point group ``gridflow.notify_channels``."""

    config_schema: ClassVar[type[Schema]] = EmptyConfig
    # The contact field the channel writes to (``PHONE``, ``EMAIL``, ``WECHAT_OPENID``) or None.
    contact: ClassVar[str | None] = None

    def __init__(self, name: str, options: Mapping[str, Any], context: ChannelContext):
        self.name = name
        # Loaded (defaults filled, types checked) by the channel's own schema.
        self.options: dict[str, Any] = self.config_schema().load(dict(options))
        self.context = context

    @abc.abstractmethod
    def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver ``message``; raise ``ChannelUnavailable`` or ``ChannelRefused``."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Let go of what the channel holds (connections)."""


def installed() -> dict[str, str]:
    return plugins.installed(ENTRY_POINT_GROUP)


def check_class(name: str, cls: object) -> type[NotifyChannel]:
    return plugins.check_class(
        name, cls, NotifyChannel, what="notify channel", error=ChannelContractError, base_name=_BASE
    )


def load(name: str) -> type[NotifyChannel]:
    """The channel class installed under ``name``; ``ChannelContractError`` otherwise."""
    return plugins.load(
        ENTRY_POINT_GROUP,
        name,
        NotifyChannel,
        what="notify channel",
        error=ChannelContractError,
        base_name=_BASE,
    )


__all__ = [
    "CONTACT_FIELDS",
    "EMAIL",
    "ENTRY_POINT_GROUP",
    "PHONE",
    "WECHAT_OPENID",
    "ChannelContext",
    "ChannelContractError",
    "ChannelRefused",
    "ChannelUnavailable",
    "NotifyChannel",
    "OutgoingMessage",
    "SendResult",
    "installed",
    "load",
]
