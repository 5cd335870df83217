"""The department adapter contract: how Gridflow reaches a department's (or a unit's) system.

An adapter is a class that subclasses ``DepartmentAdapter`` and implements every abstract method
below. It is installed as a Python package that names it in the entry-point group
``gridflow.department_adapters`` (``registry.ENTRY_POINT_GROUP``); the city's data
(``adapters.csv`` beside the jurisdiction) says which adapter serves which department or unit,
its endpoint, where its secret is kept (a reference, never the secret) and how its words map to
Gridflow's statuses.

What the departments service promises an adapter:

- ``push`` is called at least once per delivery, in order per unit, never two at once for one
  unit; a delivery that was pushed may be pushed again (after a crash, or when the answer was
  lost), with the same ``delivery_id``: the adapter passes it on as an idempotency key so the
  department system can drop the copy.
- a ``PushFailed`` (the system could not be reached, timed out, answered 5xx or 429) is retried
  on the schedule, surviving restarts; after the last try the delivery is *undeliverable* there
  and the command center is told. ``PushRefused`` (the system answered that it will never take
  this message: 4xx) makes it undeliverable at once. Any other exception counts as
  ``PushFailed``.
- ``poll_status`` is called for adapters whose systems must be asked (``polls = True``), with
  the deliveries still open there; it returns what changed.

What an adapter promises Gridflow: no blocking beyond its configured timeout, no secret in a log
line or an exception message, and statuses reported in the department's own words
(``StatusReport.word``): Gridflow maps them with the city's table and keeps, logs and shows a
word it does not know, never guesses.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from marshmallow import Schema

# One adapters.csv row, defined with the jurisdiction (standard library only), which carries it.
# Re-exported here: an adapter package imports the whole contract from one place.
from gridflow_common.domain.jurisdiction import AdapterConfig

LEAD = "lead"
ASSISTING = "assisting"
ROLES = (LEAD, ASSISTING)

# What a delivery carries: a case given to a unit, or a later change of that case.
KIND_CASE = "case"
KIND_CHANGE = "change"

# The changes pushed after a case (``message["change"]``).
CHANGE_WITHDRAWN = "withdrawn"  # the case moved to another unit; this one no longer holds it
CHANGE_COLOUR = "colour"  # its SLA colour changed (``message["colour"]``)
CHANGE_CLOSED = "closed"  # verified and closed (``message["status"]``)
CHANGE_REWORK = "rework"  # verification failed: the lead must do it again
CHANGES = (CHANGE_WITHDRAWN, CHANGE_COLOUR, CHANGE_CLOSED, CHANGE_REWORK)


@dataclass(frozen=True)
class Delivery:
    """One message for one unit. ``delivery_id`` is unique and stable across retries: the
    idempotency key. ``message`` is the department message (``contracts.DepartmentMessageV2``),
    already rendered: JSON-ready, masked, in the city's time zone."""

    delivery_id: str
    kind: str  # KIND_CASE or KIND_CHANGE
    case_id: str
    assignment_id: str
    unit: str
    department: str | None
    role: str  # LEAD or ASSISTING
    message: Mapping[str, Any]
    attempt: int = 1
    # The department system's own id for the case, when an earlier push returned one.
    external_ref: str | None = None


@dataclass(frozen=True)
class PushResult:
    # The department system's id for the case (an Open311 service_request_id), kept for polls.
    external_ref: str | None = None
    detail: str = ""


class PushFailed(Exception):
    """The system could not take the message now: try again on the schedule. ``retry_after``
    (seconds), when the system said (HTTP Retry-After), is a lower bound for the next try."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class PushRefused(Exception):
    """The system answered that it will never take this message (a 4xx other than 408/429):
    retrying cannot help, so the delivery is undeliverable at once."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OpenDelivery:
    """A delivery a polling adapter is asked about: still open at the department's system."""

    delivery_id: str
    case_id: str
    assignment_id: str
    unit: str
    external_ref: str | None
    # The last status word seen there, so an adapter reports only what changed.
    last_word: str | None = None


@dataclass(frozen=True)
class StatusReport:
    """What a department's system says of a case, in its own words."""

    case_id: str
    unit: str
    word: str  # the department's status word, as it said it
    note: str | None = None
    assignment_id: str | None = None
    delivery_id: str | None = None
    external_ref: str | None = None
    occurred_at: dt.datetime | None = None


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str = ""


class SecretUnavailable(LookupError):
    """A credential reference that names nothing here (unset variable, missing file)."""


@dataclass(frozen=True)
class AdapterContext:
    """What Gridflow lends an adapter. ``secret(ref)`` resolves a credential reference (raises
    ``SecretUnavailable``); ``sign_link(delivery, action, expires_in_seconds)`` makes a link
    that performs ``action`` (a Gridflow update status) on that delivery's case once, as its
    unit, until it expires; ``public_url`` is where people reach Gridflow; ``now`` is
    operational time (UTC)."""

    secret: Callable[[str], str]
    sign_link: Callable[[Delivery, str, float], str]
    public_url: str
    now: Callable[[], dt.datetime]


class EmptyConfig(Schema):
    """For an adapter with no options of its own."""


class DepartmentAdapter(abc.ABC):
    """Subclass this, implement every abstract method, and name the class in the entry-point
    group ``gridflow.department_adapters``. One instance serves one ``AdapterConfig`` (one
    adapters.csv row) and is reused for every delivery to it, from one thread at a time per
    unit; keep connections in it, not globals."""

    # The name the city's data uses for this adapter (its entry-point name).
    name: ClassVar[str]
    # A marshmallow schema for ``AdapterConfig.options``; refused at import when it fails.
    config_schema: ClassVar[type[Schema]] = EmptyConfig
    # Whether the adapter needs ``AdapterConfig.endpoint`` (checked at import).
    needs_endpoint: ClassVar[bool] = True
    # When not empty, the endpoint must be a URL with one of these schemes and a host, and no
    # user or password in it (those belong in the credential); checked at import.
    endpoint_schemes: ClassVar[tuple[str, ...]] = ()
    # Whether the adapter needs ``AdapterConfig.credential_ref`` (checked at import).
    needs_credential: ClassVar[bool] = False
    # True for adapters whose systems are asked for status (``poll_status``) rather than telling.
    polls: ClassVar[bool] = False

    def __init__(self, config: AdapterConfig, context: AdapterContext):
        self.config = config
        self.context = context

    @classmethod
    def endpoint_problem(cls, endpoint: str | None) -> str | None:
        """What is wrong with ``endpoint`` for this adapter, beyond ``endpoint_schemes`` (a
        ``mailto:`` list, a folder), checked at the import of the city's data; None when it
        can be used. Say what is wrong without repeating a secret someone may have pasted."""
        return None

    @abc.abstractmethod
    def push(self, delivery: Delivery) -> PushResult:
        """Give a case to a unit, as lead or assisting (``delivery.kind == KIND_CASE``).
        Raises ``PushFailed`` or ``PushRefused``."""

    @abc.abstractmethod
    def push_change(self, delivery: Delivery) -> PushResult:
        """Tell a unit of a later change of a case it was given (``KIND_CHANGE``:
        ``delivery.message["change"]`` is one of ``CHANGES``). Same failures as ``push``."""

    @abc.abstractmethod
    def take_status(self, body: Mapping[str, Any]) -> StatusReport:
        """Read a status message the department's system sent back (a webhook callback's JSON
        body, a message on the status exchange) into a ``StatusReport`` in the department's
        words. Raises ``ValueError`` naming the field and the problem for a malformed one."""

    @abc.abstractmethod
    def poll_status(self, open_deliveries: Sequence[OpenDelivery]) -> list[StatusReport]:
        """For ``polls = True`` adapters: ask the system about these deliveries and report
        those whose status changed. Others return ``[]``."""

    @abc.abstractmethod
    def health(self) -> Health:
        """Whether the system can be reached now (cheap: one request at most)."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Let go of connections (the service is stopping)."""
