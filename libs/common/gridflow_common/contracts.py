"""Every event Gridflow publishes, its payload schema and who consumes it: one place for all.

An event travels as a JSON envelope::

    {"event_id": "...", "event_type": "case_registered", "version": 1, "source": "intake",
     "occurred_at": "2026-03-02T09:00:00+08:00", "payload": {...}}

``occurred_at`` is the instant the fact became true in the city's time. Handlers act "as of" that
instant, never as of the moment they happen to run: a red warning found by a sweep over a
three-day clock jump escalates at the red instant, and the new handler's clock starts there.

Versioning: a payload change that a consumer of the previous version could not read gets a new
``version``; consumers reject versions they do not know (the message is dead-lettered, not lost).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import (
    EXCLUDE,
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from gridflow_common.domain import privacy
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.calendar import TimeUnit

# Services: each one a process in the real topology, each owning its own tables.
INTAKE = "intake"
ROUTING = "routing"
DEPARTMENTS = "departments"
SLA = "sla"
NOTIFY = "notify"
SERVICES = (INTAKE, ROUTING, DEPARTMENTS, SLA, NOTIFY)

# Event types.
CASE_REGISTERED = "case_registered"
CASE_STATUS_REPORTED = "case_status_reported"
CASE_VERIFIED = "case_verified"
CASE_ROUTED = "case_routed"
CASE_DISPATCHED = "case_dispatched"
CASE_COLOUR_CHANGED = "case_colour_changed"
CASE_AWAITING_ORDER = "case_awaiting_order"
CLOCK_ADVANCED = "clock_advanced"
# The command center gave an order on a case (指令): intake took it and changed its own view;
# routing (a new assignment), SLA (the clock) and notify (督办) act on it.
CASE_ORDER_GIVEN = "case_order_given"
# A unit could not be reached after the last try: the command center must act.
CASE_UNDELIVERABLE = "case_undeliverable"
# A department's system said something of a case that Gridflow had to ask for (polling
# adapters: Open311); intake takes it like any status update.
CASE_STATUS_RECEIVED = "case_status_received"
# Many new cases of one category in one grid or community within a short window (热点): the
# command center is told (notify).
HOTSPOT_DETECTED = "hotspot_detected"

# The vocabulary lives in one place (domain/vocabulary.py); the schemas below validate against it.
CHANNELS = v.CHANNELS
UPDATE_STATUSES = v.UPDATE_STATUSES
CASE_STATUSES = v.CASE_STATUSES
TIERS = v.TIERS
COLOURS = v.COLOURS

# -- Department systems over AMQP (docs/integrators.md, docs/asyncapi.yaml) ----------------------
# Gridflow -> departments: the topic exchange of cases, routing key "<owner>.<unit>", where the
# owner is the unit's department (or the unit's own code for a unit with none: a community
# office, a street center, the command center). A station binds "police.police-330302001" and
# sees only its own cases; a bureau binds "police.*" and sees all of its department's.
CASE_EXCHANGE = "gridflow.cases"
# The direct exchange of the first version (routing key = the department or unit code): named
# for the AsyncAPI document's history only; nothing declares it or publishes there any more.
DEPARTMENT_EXCHANGE = "gridflow.departments"
# Departments -> Gridflow: status back (routing key = the sender's unit or department code),
# answered on the sender's reply queue through the direct exchange of replies.
STATUS_EXCHANGE = "gridflow.status"
STATUS_QUEUE = "gridflow.status.intake"
# One consumer at a time takes the status queue (the other intake replicas stand by), so one
# sender's messages are taken in the order it sent them. Whoever declares the queue declares it
# with these arguments (RabbitMQ refuses a declaration that contradicts the queue's own).
STATUS_QUEUE_ARGUMENTS: Mapping[str, Any] = {"x-single-active-consumer": True}
REPLY_EXCHANGE = "gridflow.replies"
# The RabbitMQ user a department or unit connects as (gridflow amqp-users): its identity on the
# status exchange, checked by the broker (the message's user_id property).
AMQP_USER_PREFIX = "gridflow-"


def unit_routing_key(department: str | None, unit: str) -> str:
    return f"{department or unit}.{unit}"


def unit_queue(unit: str) -> str:
    """A unit's own durable queue, bound with its routing key."""
    return f"gridflow.unit.{unit}"


def department_queue(code: str) -> str:
    """A department's durable queue, bound with "<department>.*": all of its units' cases."""
    return f"gridflow.department.{code}"


def reply_queue(code: str) -> str:
    """Where the answers to a department's or unit's status messages wait for it."""
    return f"gridflow.reply.{code}"


def amqp_user(code: str) -> str:
    return f"{AMQP_USER_PREFIX}{code}"


def event_exchange(source: str) -> str:
    """nameko's naming for a service's event exchange, so nameko's event handlers bind to it."""
    return f"{source}.events"


def event_queue(source: str, event_type: str, consumer: str, method: str) -> str:
    """nameko's naming for a SERVICE_POOL event handler's queue."""
    return f"evt-{source}-{event_type}--{consumer}.{method}"


@dataclass(frozen=True)
class Subscription:
    source: str
    event_type: str
    consumer: str
    method: str

    @property
    def queue(self) -> str:
        return event_queue(self.source, self.event_type, self.consumer, self.method)


# Every consumer of every event. The relay declares these queues before it publishes anything, so
# that no event is confirmed by the broker and then discarded for want of a bound queue, whatever
# order the services start in. Each service's nameko handlers must match this table (a unit test
# checks it).
SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription(INTAKE, CASE_REGISTERED, ROUTING, "on_case_registered"),
    Subscription(INTAKE, CASE_STATUS_REPORTED, ROUTING, "on_case_status_reported"),
    Subscription(INTAKE, CASE_STATUS_REPORTED, SLA, "on_case_status_reported"),
    Subscription(INTAKE, CASE_VERIFIED, ROUTING, "on_case_verified"),
    Subscription(INTAKE, CASE_VERIFIED, SLA, "on_case_verified"),
    Subscription(INTAKE, CLOCK_ADVANCED, SLA, "on_clock_advanced"),
    Subscription(ROUTING, CASE_ROUTED, DEPARTMENTS, "on_case_routed"),
    Subscription(DEPARTMENTS, CASE_DISPATCHED, SLA, "on_case_dispatched"),
    Subscription(DEPARTMENTS, CASE_DISPATCHED, NOTIFY, "on_case_dispatched"),
    Subscription(DEPARTMENTS, CASE_DISPATCHED, INTAKE, "on_case_dispatched"),
    Subscription(DEPARTMENTS, CASE_UNDELIVERABLE, INTAKE, "on_case_undeliverable"),
    Subscription(DEPARTMENTS, CASE_UNDELIVERABLE, NOTIFY, "on_case_undeliverable"),
    Subscription(SLA, CASE_COLOUR_CHANGED, INTAKE, "on_case_colour_changed"),
    Subscription(SLA, CASE_COLOUR_CHANGED, ROUTING, "on_case_colour_changed"),
    Subscription(SLA, CASE_COLOUR_CHANGED, NOTIFY, "on_case_colour_changed"),
    # Department systems hear of later changes of a case they were given (push_change).
    Subscription(SLA, CASE_COLOUR_CHANGED, DEPARTMENTS, "on_case_colour_changed"),
    Subscription(INTAKE, CASE_VERIFIED, DEPARTMENTS, "on_case_verified"),
    Subscription(ROUTING, CASE_AWAITING_ORDER, INTAKE, "on_case_awaiting_order"),
    Subscription(ROUTING, CASE_AWAITING_ORDER, NOTIFY, "on_case_awaiting_order"),
    Subscription(DEPARTMENTS, CASE_STATUS_RECEIVED, INTAKE, "on_case_status_received"),
    Subscription(INTAKE, HOTSPOT_DETECTED, NOTIFY, "on_hotspot_detected"),
    Subscription(INTAKE, CASE_ORDER_GIVEN, ROUTING, "on_case_order_given"),
    Subscription(INTAKE, CASE_ORDER_GIVEN, SLA, "on_case_order_given"),
    Subscription(INTAKE, CASE_ORDER_GIVEN, NOTIFY, "on_case_order_given"),
    # Residents hear back (notify): registered, and closed after verification.
    Subscription(INTAKE, CASE_REGISTERED, NOTIFY, "on_case_registered"),
    Subscription(INTAKE, CASE_VERIFIED, NOTIFY, "on_case_verified"),
    # Department systems hear that a case they work on was finished by order (rejected, merged).
    Subscription(INTAKE, CASE_ORDER_GIVEN, DEPARTMENTS, "on_case_order_given"),
)


def subscriptions_from(source: str) -> list[Subscription]:
    return [s for s in SUBSCRIPTIONS if s.source == source]


def subscriptions_of(consumer: str) -> list[Subscription]:
    return [s for s in SUBSCRIPTIONS if s.consumer == consumer]


class _Payload(Schema):
    class Meta:
        # A newer producer may add fields; an older consumer ignores them (additive = same version).
        unknown = EXCLUDE


def _masked_only(reporter: dict | None) -> None:
    problems = privacy.unmasked_reporter_fields(reporter) if reporter else []
    if problems:
        raise ValidationError({"reporter": {field: ["must be masked"] for field in problems}})


class MaskedReporterSchema(Schema):
    """A reporter as it travels between services: masked (``domain.privacy.mask_reporter``).
    The contract refuses a clear name or number, so a producer that forgot to mask fails its
    unit of work instead of publishing the resident's details to every consumer."""

    class Meta:
        unknown = EXCLUDE

    name = fields.String(allow_none=True, load_default=None)
    phone = fields.String(allow_none=True, load_default=None)

    @validates_schema(pass_original=True)
    def masked(self, data: dict, original: Any, **_: object) -> None:
        # Every field the producer gave, not only those kept: a contact field this schema does
        # not name yet (e-mail, openid) given in clear is a producer that forgot to mask.
        given = original if isinstance(original, dict) else data
        problems = privacy.unmasked_reporter_fields({**given, **data})
        if problems:
            raise ValidationError({field: ["must be masked"] for field in problems})


class CaseRegisteredV1(_Payload):
    case_id = fields.String(required=True)
    category = fields.String(allow_none=True, load_default=None)
    area_code = fields.String(required=True)
    # Masked (domain.privacy.mask_free_text: phone and ID numbers, the reporter's name); intake
    # keeps the original.
    description = fields.String(required=True)
    location = fields.Dict(allow_none=True, load_default=None)
    jurisdiction_version = fields.Integer(required=True)
    # The first report's reporter, masked; null when the report named none (additive).
    reporter = fields.Nested(MaskedReporterSchema, allow_none=True, load_default=None)
    # The channel the first report came by (vocabulary.CHANNELS): the city's rules may route
    # by it (additive; null from an older intake).
    channel = fields.String(allow_none=True, load_default=None)
    # The report's photos, as paths under Gridflow's API (read with the case's rights), and
    # when it was observed, ISO 8601 (additive; absent: none, not said).
    photos = fields.List(fields.String(), load_default=list)
    observed_at = fields.String(allow_none=True, load_default=None)


class CaseStatusReportedV1(_Payload):
    case_id = fields.String(required=True)
    assignment_id = fields.String(allow_none=True, load_default=None)
    sender = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(UPDATE_STATUSES))
    # Masked like a description (intake's timeline keeps the original).
    note = fields.String(allow_none=True, load_default=None)
    category = fields.String(allow_none=True, load_default=None)
    jurisdiction_version = fields.Integer(required=True)
    # An extension request's (additive): how many more hours, or the due instant asked for
    # (ISO 8601); null for every other status.
    hours = fields.Integer(allow_none=True, load_default=None)
    due = fields.String(allow_none=True, load_default=None)


class CaseVerifiedV1(_Payload):
    case_id = fields.String(required=True)
    passed = fields.Boolean(required=True)
    # Masked like a description (intake's timeline keeps the original).
    note = fields.String(allow_none=True, load_default=None)
    jurisdiction_version = fields.Integer(required=True)


class RuleTimeLimitSchema(Schema):
    """A city rule's time limit for one assignment, instead of its category's (rules.yaml)."""

    class Meta:
        unknown = EXCLUDE

    amount = fields.Integer(required=True, validate=validate.Range(min=0))
    unit = fields.String(required=True, validate=validate.OneOf([u.value for u in TimeUnit]))
    rule_id = fields.String(allow_none=True, load_default=None)


class CaseRoutedV1(_Payload):
    case_id = fields.String(required=True)
    assignment_id = fields.String(required=True)
    # The assignment's place in its case's sequence (1, then one more per reassignment), so a
    # consumer can tell a late announcement of an older assignment from a newer one. Optional
    # (additive): an announcement without it has it as the suffix of ``assignment_id``.
    seq = fields.Integer(allow_none=True, load_default=None)
    reason = fields.String(
        required=True,
        validate=validate.OneOf(v.ROUTING_REASONS),
    )
    category = fields.String(allow_none=True, load_default=None)
    tier = fields.String(required=True, validate=validate.OneOf(TIERS))
    holder = fields.String(required=True)
    lead = fields.String(allow_none=True, load_default=None)
    assisting = fields.List(fields.String(), load_default=list)
    escalations = fields.Integer(required=True)
    area_code = fields.String(required=True)
    jurisdiction_version = fields.Integer(required=True)
    explanation = fields.String(load_default="")
    # What a department system needs to act without calling back (masked, as registered).
    description = fields.String(load_default="")
    location = fields.Dict(allow_none=True, load_default=None)
    reporter = fields.Nested(MaskedReporterSchema, allow_none=True, load_default=None)
    # The rule that chose the holder (rules.yaml), or "taxonomy" when none did, and the version
    # of the city's rules (its jurisdiction version) it was decided under (additive).
    rule_id = fields.String(allow_none=True, load_default=None)
    rule_version = fields.Integer(allow_none=True, load_default=None)
    # A rule's time limit for this assignment, instead of its category's: SLA's clock and the
    # due instant given to departments count it (additive; null: the category's).
    time_limit = fields.Nested(RuleTimeLimitSchema, allow_none=True, load_default=None)
    # The registering report's photos (paths under the API; additive, on a new case's first
    # assignment).
    photos = fields.List(fields.String(), load_default=list)


class DeliverySchema(Schema):
    """One unit a case was given to, and through what."""

    class Meta:
        unknown = EXCLUDE

    unit = fields.String(required=True)
    department = fields.String(allow_none=True, load_default=None)
    role = fields.String(required=True, validate=validate.OneOf(("lead", "assisting")))
    adapter = fields.String(required=True)
    delivery_id = fields.String(required=True)


class CaseDispatchedV1(CaseRoutedV1):
    queue = fields.String(required=True)
    # Every unit the case was given to: the holder (lead) and each assisting department's unit
    # (additive; an announcement without it gave the case to the holder alone).
    deliveries = fields.List(fields.Nested(DeliverySchema), load_default=list)
    # The holder's due instant, ISO 8601 in the city's zone (additive).
    due_at = fields.String(allow_none=True, load_default=None)


class CaseUndeliverableV1(_Payload):
    case_id = fields.String(required=True)
    assignment_id = fields.String(required=True)
    delivery_id = fields.String(required=True)
    unit = fields.String(required=True)
    department = fields.String(allow_none=True, load_default=None)
    role = fields.String(required=True, validate=validate.OneOf(("lead", "assisting")))
    adapter = fields.String(required=True)
    attempts = fields.Integer(required=True)
    # Why the last try failed, as the adapter said it (no secret: adapters promise that).
    reason = fields.String(required=True)
    jurisdiction_version = fields.Integer(required=True)


class CaseStatusReceivedV1(_Payload):
    case_id = fields.String(required=True)
    assignment_id = fields.String(allow_none=True, load_default=None)
    delivery_id = fields.String(allow_none=True, load_default=None)
    unit = fields.String(required=True)
    adapter = fields.String(required=True)
    # The department's own word, unmapped: intake maps it with the city's table.
    word = fields.String(required=True)
    note = fields.String(allow_none=True, load_default=None)
    jurisdiction_version = fields.Integer(required=True)


class CaseColourChangedV1(_Payload):
    case_id = fields.String(required=True)
    assignment_id = fields.String(required=True)
    colour = fields.String(allow_none=True, validate=validate.OneOf(COLOURS))
    action = fields.String(load_default=v.ACTION_NONE, validate=validate.OneOf(v.WARNING_ACTIONS))
    fraction = fields.Float(allow_none=True, load_default=None)
    holder = fields.String(allow_none=True, load_default=None)
    jurisdiction_version = fields.Integer(required=True)


class CaseAwaitingOrderV1(_Payload):
    """A holder at the top (the command center) reported what would move a case elsewhere; it
    stays, with the same assignment and clock, until the command center orders what to do."""

    case_id = fields.String(required=True)
    assignment_id = fields.String(required=True)
    holder = fields.String(required=True)
    # What the holder reported: returned or beyond_authority.
    cause = fields.String(required=True, validate=validate.OneOf(UPDATE_STATUSES))
    explanation = fields.String(load_default="")
    jurisdiction_version = fields.Integer(required=True)


class HotspotDetectedV1(_Payload):
    """The ``threshold``-th new case of ``category`` in area ``area_code`` (a grid or a
    community) within one window: announced once per (category, area, window), by the
    registration that reached the threshold."""

    hotspot_id = fields.String(required=True)
    category = fields.String(required=True)
    level = fields.String(required=True, validate=validate.OneOf(("grid", "community")))
    area_code = fields.String(required=True)
    count = fields.Integer(required=True)
    threshold = fields.Integer(required=True)
    window_minutes = fields.Integer(required=True)
    window_start = fields.AwareDateTime(required=True)
    # The case whose registration reached the threshold.
    case_id = fields.String(required=True)
    jurisdiction_version = fields.Integer(required=True)


class CaseOrderGivenV1(_Payload):
    """An order of the command center (or a leader's comment), as intake took it: the case's
    status before and after, and what the order names."""

    order_id = fields.String(required=True)
    case_id = fields.String(required=True)
    # The assignment the case had when the order was given (null before its first dispatch).
    assignment_id = fields.String(allow_none=True, load_default=None)
    kind = fields.String(required=True, validate=validate.OneOf(v.ORDER_KINDS))
    # assign: the unit that takes the case; and the category, when the order reclassifies it.
    unit = fields.String(allow_none=True, load_default=None)
    category = fields.String(allow_none=True, load_default=None)
    # merge: the case this one joined.
    into = fields.String(allow_none=True, load_default=None)
    # Masked like a note (intake's timeline keeps the original).
    reason = fields.String(allow_none=True, load_default=None)
    # Who gave it: the principal's label (user:alice), never a secret.
    by = fields.String(required=True)
    status_before = fields.String(required=True, validate=validate.OneOf(CASE_STATUSES))
    status = fields.String(required=True, validate=validate.OneOf(CASE_STATUSES))
    # The unit holding the case when the order was given (supervise reminds it).
    holder = fields.String(allow_none=True, load_default=None)
    jurisdiction_version = fields.Integer(required=True)
    # approve / refuse (additive): the holder's request decided (extension or pause); an
    # approved extension's new due instant (ISO 8601), which SLA makes its clock's.
    request = fields.String(
        allow_none=True, load_default=None, validate=validate.OneOf(("extension", "pause"))
    )
    due = fields.String(allow_none=True, load_default=None)


class ClockAdvancedV1(_Payload):
    now = fields.AwareDateTime(required=True)


# -- What department systems read and write (not events: no envelope) -------------------------
DEPARTMENT_MESSAGE_VERSION = 2


class PointSchema(Schema):
    lat = fields.Float(required=True)
    lon = fields.Float(required=True)


class PlaceSchema(Schema):
    """Where the case is: the point when one was given, the grid it lies in, the community and
    street above it, and a readable address (the reporter's, or the areas' names)."""

    point = fields.Nested(PointSchema, allow_none=True, required=True)
    grid = fields.String(allow_none=True, required=True)
    community = fields.String(allow_none=True, required=True)
    street = fields.String(allow_none=True, required=True)
    address = fields.String(allow_none=True, required=True)


class StatusBackSchema(Schema):
    """How the unit answers: over AMQP (publish to ``exchange`` with ``routing_key``, reply
    waits on ``reply_queue``) or over HTTP (``http``, signed)."""

    exchange = fields.String(required=True)
    routing_key = fields.String(required=True)
    reply_queue = fields.String(required=True)
    http = fields.String(required=True)


class DepartmentMessageV2(Schema):
    """A case given to a unit (``kind`` "case"), or a later change of it (``kind`` "change",
    ``change`` naming what). Published on ``CASE_EXCHANGE`` with the unit's routing key, posted
    by the webhook adapter, rendered by the e-mail adapter. ``delivery_id`` is the idempotency
    key: the same delivery may arrive twice."""

    class Meta:
        unknown = EXCLUDE

    message_version = fields.Integer(required=True, validate=validate.Equal(2))
    kind = fields.String(required=True, validate=validate.OneOf(("case", "change")))
    change = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.OneOf(("withdrawn", "colour", "closed", "rework")),
    )
    delivery_id = fields.String(required=True)
    case_id = fields.String(required=True)
    assignment_id = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(("lead", "assisting")))
    unit = fields.String(required=True)
    department = fields.String(allow_none=True, required=True)
    # Who holds the case (the lead unit) and its department; the assisting departments.
    handler = fields.String(required=True)
    lead = fields.String(allow_none=True, required=True)
    assisting = fields.List(fields.String(), required=True)
    tier = fields.String(required=True, validate=validate.OneOf(TIERS))
    reason = fields.String(required=True, validate=validate.OneOf(v.ROUTING_REASONS))
    category = fields.String(allow_none=True, required=True)
    category_name = fields.String(allow_none=True, required=True)
    # Masked (phone and ID numbers), as everywhere outside intake.
    description = fields.String(required=True)
    location = fields.Nested(PlaceSchema, required=True)
    area_code = fields.String(required=True)
    # The holder's due instant and colour, in the city's zone; null before a clock runs.
    due_at = fields.String(allow_none=True, required=True)
    colour = fields.String(allow_none=True, required=True, validate=validate.OneOf(COLOURS))
    # Masked, always: a name and a number never ride the broker (checked, every field).
    reporter = fields.Dict(allow_none=True, required=True)
    # For the lead department the city's data lets see reporters (departments.csv
    # sees_reporter): the path of the case, whose reports name them whole when read with the
    # department's credential. Null otherwise (additive).
    reporter_contact_url = fields.String(allow_none=True, load_default=None)
    # The case's photos: paths under Gridflow's API, read with the department's credential
    # (additive; empty when none came with the case's first assignment).
    photos = fields.List(fields.String(), load_default=list)
    dispatched_at = fields.String(required=True)
    status_back = fields.Nested(StatusBackSchema, required=True)

    @validates_schema
    def reporter_masked(self, data: dict, **_: object) -> None:
        _masked_only(data.get("reporter"))


class StatusMessageV1(Schema):
    """A department's system says something of a case (on ``STATUS_EXCHANGE``, or posted to
    ``POST /api/v1/departments/{code}/updates``). ``status`` is in the department's own words
    or Gridflow's (``vocabulary.UPDATE_STATUSES``); ``unit`` defaults to the sender. AMQP
    properties: ``reply_to`` (default the sender's reply queue), ``correlation_id`` (echoed),
    ``user_id`` (the sender's RabbitMQ user, checked by the broker)."""

    class Meta:
        unknown = EXCLUDE

    case_id = fields.String(required=True, validate=validate.Length(1, 40))
    status = fields.String(required=True, validate=validate.Length(1, 60))
    note = fields.String(allow_none=True, load_default=None, validate=validate.Length(0, 2000))
    unit = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 100))
    category = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 60))
    # For an extension request: how many more hours the unit asks for.
    hours = fields.Integer(
        allow_none=True, load_default=None, validate=validate.Range(min=1, max=24 * 90)
    )
    # The sender's id for this message: a repeat with the same id gets the first answer.
    message_id = fields.String(allow_none=True, load_default=None, validate=validate.Length(1, 200))


class StatusReplyV1(Schema):
    """Gridflow's answer to a status message, on the sender's reply queue."""

    correlation_id = fields.String(allow_none=True, required=True)
    message_id = fields.String(allow_none=True, required=True)
    case_id = fields.String(allow_none=True, required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(("accepted", "refused")))
    # Gridflow's status the word was taken as (null when refused or not recognised).
    status = fields.String(allow_none=True, required=True)
    # False for a word neither Gridflow's nor in the city's status map: accepted (kept on the
    # case's timeline, shown), and the case's status did not change. Additive: absent means true.
    recognised = fields.Boolean(load_default=True)
    # Field -> what is wrong (empty when accepted).
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True)


class TimelineEntrySchema(Schema):
    class Meta:
        unknown = INCLUDE  # each kind of entry carries its own details

    at = fields.String(required=True)
    kind = fields.String(required=True)


class CaseReportSchema(Schema):
    """One report a case holds, in the order received: the first registered the case, the
    others joined it (合并). ``reporter`` is whole or masked, as the caller may see it."""

    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    received_at = fields.String(required=True)
    # When the reporter saw it (null when the report did not say).
    observed_at = fields.String(allow_none=True, load_default=None)
    reporter = fields.Dict(allow_none=True, required=True)


class CaseSchema(Schema):
    """The canonical case: what ``GET /api/v1/cases/{case_id}`` answers, and what any later
    consumer of a case (the command center's board, exports) reads."""

    case_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(CASE_STATUSES))
    category = fields.String(allow_none=True)
    description = fields.String(required=True)
    area_code = fields.String(required=True)
    location = fields.Dict(allow_none=True)
    tier = fields.String(allow_none=True, validate=validate.OneOf(TIERS))
    handler = fields.String(allow_none=True)
    lead = fields.String(allow_none=True)
    assisting = fields.List(fields.String(), required=True)
    # The names beside the codes (the case's jurisdiction version): the category's Chinese
    # name, the holder's, lead's and assisting parties' (a unit's name, else its department's),
    # the area's; null (in assisting_names: a null item) where the jurisdiction lacks the code.
    category_name = fields.String(allow_none=True)
    handler_name = fields.String(allow_none=True)
    lead_name = fields.String(allow_none=True)
    assisting_names = fields.List(fields.String(allow_none=True), required=True)
    area_name = fields.String(allow_none=True)
    colour = fields.String(allow_none=True, validate=validate.OneOf(COLOURS))
    # The running clock's due instant (ISO 8601, the city's zone); null when no clock runs.
    due = fields.String(allow_none=True)
    # The holder's request awaiting the command center's decision: extension or pause (or null).
    pending = fields.String(allow_none=True)
    # Since when an approved pause (挂起) holds the clock still (the city's zone); null when none.
    paused_since = fields.String(allow_none=True)
    # Approved extensions, and leader comments (点评).
    extensions = fields.Integer(required=True)
    comments = fields.Integer(required=True)
    escalations = fields.Integer(required=True)
    reporters = fields.Integer(required=True)
    reports = fields.List(fields.Nested(CaseReportSchema), required=True)
    satisfaction = fields.Integer(allow_none=True)
    # How the text was classified at registration: category (null: left for triage), score,
    # scores (the top categories) and reasons (the words that weighed, per category); null
    # when the report named its category.
    classification = fields.Dict(allow_none=True)
    registered_at = fields.String(required=True)
    # When its first report was observed (null when not said); registered_at is its arrival.
    observed_at = fields.String(allow_none=True)
    # Its photos: photo_id, url (a path under the API), content_type, size, width, height, sha256.
    photos = fields.List(fields.Dict(), load_default=list)
    closed_at = fields.String(allow_none=True)
    timeline = fields.List(fields.Nested(TimelineEntrySchema), required=True)


PAYLOAD_SCHEMAS: dict[tuple[str, int], type[Schema]] = {
    (CASE_REGISTERED, 1): CaseRegisteredV1,
    (CASE_STATUS_REPORTED, 1): CaseStatusReportedV1,
    (CASE_VERIFIED, 1): CaseVerifiedV1,
    (CASE_ROUTED, 1): CaseRoutedV1,
    (CASE_DISPATCHED, 1): CaseDispatchedV1,
    (CASE_COLOUR_CHANGED, 1): CaseColourChangedV1,
    (CASE_AWAITING_ORDER, 1): CaseAwaitingOrderV1,
    (CLOCK_ADVANCED, 1): ClockAdvancedV1,
    (CASE_ORDER_GIVEN, 1): CaseOrderGivenV1,
    (CASE_UNDELIVERABLE, 1): CaseUndeliverableV1,
    (CASE_STATUS_RECEIVED, 1): CaseStatusReceivedV1,
    (HOTSPOT_DETECTED, 1): HotspotDetectedV1,
}
CURRENT_VERSION = 1


class EnvelopeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    version = fields.Integer(required=True)
    source = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    payload = fields.Dict(required=True)


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    version: int
    source: str
    occurred_at: dt.datetime
    payload: dict

    def to_message(self) -> dict:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "version": self.version,
            "source": self.source,
            "occurred_at": self.occurred_at.isoformat(),
            "payload": self.payload,
        }


_SCHEMAS = {key: schema() for key, schema in PAYLOAD_SCHEMAS.items()}
_ENVELOPE = EnvelopeSchema()


def make_event(source: str, event_type: str, occurred_at: dt.datetime, payload: dict) -> Event:
    """Validate ``payload`` against the event's current schema and wrap it in an envelope."""
    schema = _SCHEMAS[(event_type, CURRENT_VERSION)]
    try:
        loaded = schema.load(payload)
    except ValidationError as exc:
        raise ValueError(
            f"{event_type} payload does not match its contract: {exc.messages}"
        ) from None
    return Event(
        event_id=uuid.uuid4().hex,
        event_type=event_type,
        version=CURRENT_VERSION,
        source=source,
        occurred_at=occurred_at,
        payload=schema.dump(loaded),
    )


def load_event(message: dict) -> Event:
    """Parse an envelope and its payload; raises ``ValidationError`` naming what is wrong."""
    env = _ENVELOPE.load(message)
    key = (env["event_type"], env["version"])
    if key not in PAYLOAD_SCHEMAS:
        raise ValidationError({"event_type": [f"unknown event {key[0]} version {key[1]}"]})
    payload = _SCHEMAS[key].load(env["payload"])
    return Event(
        event_id=env["event_id"],
        event_type=env["event_type"],
        version=env["version"],
        source=env["source"],
        occurred_at=env["occurred_at"],
        payload=payload,
    )
