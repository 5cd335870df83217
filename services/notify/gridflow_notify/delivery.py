"""Delivering notify's messages (通知送达): from the service's time-driven tick, once a second.

- **One row per message** (``notify_notifications``), keyed ``message_key`` = recipient, case
  and cause, UNIQUE: two replicas, or one event delivered twice, insert it once.
- **Claim, then send, then record.** A pass claims due rows in a short transaction (``FOR
  UPDATE SKIP LOCKED`` on PostgreSQL) by setting a lease, commits, sends with no connection
  held, and records every outcome in one more transaction, each UPDATE guarded by the lease it
  claimed with (a replica whose lease ran out cannot overwrite the newer claim's outcome).
  **At-least-once, bounded**: only a process that dies after a gateway accepted a message and
  before the outcome was committed leaves it to be sent again, once per such crash, after the
  lease (``GRIDFLOW_NOTIFY_LEASE_SECONDS``, 120) runs out; every channel passes the message id
  on (Idempotency-Key, Message-ID, X-Gridflow-Message-Id) so a receiver can drop the copy.
- **Retries with exponential backoff on operational time** (``domain.notify_plan.backoff``).
  A refusal (``ChannelRefused``), or a channel still failing after its tries, moves the
  message to the person's next channel; none left: ``failed``. Each message is its own row,
  so a channel that fails holds up no other message nor channel.
- **Quiet hours** are decided when the row is made (``not_before``, city time).
- **A delivery log**: every try is a row of ``notify_attempts`` (at, channel, outcome, error),
  listed with the message (``handlers.case_notices``).
- **Every reporter, each once**: a resident's message is first one row for the case's
  reporters (person ``reporter``); its first pass asks intake who they are (the case's reports
  and those of cases merged into it) and *expands* it into one row per reporter, keyed by a
  digest of the contact (a resident who reported twice hears once), each then sent like any
  other, its contact asked of intake at send.
- **Nothing recorded is lost**: a message made while no channel that reaches its person was
  configured is ``recorded``. A process that has such a channel takes those rows up at start
  (and any made since by a replica without it) and sends them, when no older than
  ``GRIDFLOW_NOTIFY_BACKLOG_HOURS`` (72) on the city's clock; older ones are marked ``expired``
  (a warning about a week-old case helps nobody at 3 a.m.), logged and counted
  (``gridflow_notify_unsent_total``).

Channels are configured per process by ``GRIDFLOW_NOTIFY_CHANNELS``: a JSON object ``{name:
options}`` or ``file:/path.json``, each name a channel installed in ``gridflow.notify_channels``
(its options checked by the channel's schema at start). A message whose channels are all
unconfigured here is only recorded (status ``recorded``), as before channels existed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.dialects import postgresql, sqlite

from gridflow_common import notify_channels as nc
from gridflow_common import notify_templates, secrets
from gridflow_common.domain import notify_plan as np
from gridflow_common.domain import privacy
from gridflow_common.logging import get_logger
from gridflow_common.runtime import ServiceRuntime
from gridflow_notify.models import attempts, notifications

log = get_logger(__name__)

CHANNELS_ENV = "GRIDFLOW_NOTIFY_CHANNELS"
LEASE_ENV = "GRIDFLOW_NOTIFY_LEASE_SECONDS"
BACKOFF_ENV = "GRIDFLOW_NOTIFY_BACKOFF_SECONDS"  # "base,cap"
CONCURRENCY_ENV = "GRIDFLOW_NOTIFY_CONCURRENCY"
BACKLOG_ENV = "GRIDFLOW_NOTIFY_BACKLOG_HOURS"

WORKER_KEY = "notify_delivery"
CONTACTS_KEY = "reporter_contacts"  # runtime.extras: case_id -> intake's reporter contacts

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
RECORDED = "recorded"
EXPANDED = "expanded"  # a case's reporters' message, made into one row per reporter
EXPIRED = "expired"  # recorded while no channel could send it, too old when one could
REPORTER = "reporter"
RESIDENT_CHANNELS = frozenset({np.SMS, np.EMAIL, np.WECHAT_OFFICIAL})

OUTCOME_SENT = "sent"
OUTCOME_RETRY = "retry"
OUTCOME_REFUSED = "refused"
OUTCOME_EXPANDED = "expanded"

SENDS = Counter(
    "gridflow_notify_sends_total",
    "Tries to send a notification, by channel and outcome (sent, retry, refused)",
    ["channel", "outcome"],
)
UNSENT = Counter(
    "gridflow_notify_unsent_total",
    "Notifications not sent: recorded while no channel that reaches the person was configured "
    "(no_channel), taken up later by a process that has one (adopted), or too old by then "
    "(expired)",
    ["reason"],
)


@dataclass(frozen=True)
class Settings:
    lease_seconds: float = 120.0
    backoff_base: float = np.DEFAULT_BACKOFF_BASE
    backoff_cap: float = np.DEFAULT_BACKOFF_CAP
    # Tries on one channel before the message moves to the next.
    tries_per_channel: int = np.DEFAULT_MAX_ATTEMPTS
    concurrency: int = 8
    batch: int = 64
    # Recorded messages older than this (city time) when a channel comes are not sent.
    backlog_hours: float = 72.0
    # A pass keeps claiming while it finds full batches, for at most this long.
    pass_budget_seconds: float = 5.0

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        base, cap = cls.backoff_base, cls.backoff_cap
        if env.get(BACKOFF_ENV):
            base_text, _, cap_text = env[BACKOFF_ENV].partition(",")
            base = float(base_text)
            cap = float(cap_text) if cap_text else max(base, cap)
        return cls(
            lease_seconds=float(env.get(LEASE_ENV) or cls.lease_seconds),
            backoff_base=base,
            backoff_cap=cap,
            concurrency=max(1, int(env.get(CONCURRENCY_ENV) or cls.concurrency)),
            backlog_hours=float(env.get(BACKLOG_ENV) or cls.backlog_hours),
        )


def channel_options(env: dict[str, str] | None = None) -> dict[str, dict]:
    """The channels this process sends through: ``GRIDFLOW_NOTIFY_CHANNELS``."""
    text = (os.environ if env is None else env).get(CHANNELS_ENV, "").strip()
    if not text:
        return {}
    if text.startswith("file:"):
        text = Path(text[5:]).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{CHANNELS_ENV} must be a JSON object of channel name -> options")
    return data


def build_channels(
    options: dict[str, dict], context: nc.ChannelContext | None = None
) -> dict[str, nc.NotifyChannel]:
    """One instance per configured channel; a channel not installed, breaking the contract or
    with options its schema refuses stops the service at start, naming it."""
    context = context or nc.ChannelContext(secret=secrets.resolve)
    built: dict[str, nc.NotifyChannel] = {}
    for name, opts in options.items():
        cls = nc.load(name)
        built[name] = cls(name, opts, context)
    return built


@dataclass(frozen=True)
class Claim:
    id: int
    lease: dt.datetime
    case_id: str
    assignment_id: str
    person_id: str
    role: str
    created_at: dt.datetime
    kind: str
    subject: str
    text: str
    context: dict | None
    channels: tuple[str, ...] | None
    channel_index: int
    attempts: int
    address: str
    urgent: bool
    message_key: str


@dataclass
class Outcome:
    claim: Claim
    channel: str
    result: str  # OUTCOME_*
    error: str | None = None
    retry_after: float | None = None
    # Set when the message was composed at send (a resident's): the channels, text and the
    # masked contact it went to.
    channels: tuple[str, ...] | None = None
    text: str | None = None
    address: str | None = None
    # An expansion's: one (contact digest, report id) per reporter to tell.
    reporters: list[tuple[str, int]] | None = None


class DeliveryWorker:
    def __init__(
        self,
        runtime: ServiceRuntime,
        channels: dict[str, nc.NotifyChannel],
        settings: Settings | None = None,
        contacts: Callable[[str, int | None, bool], list[dict]] | None = None,
    ):
        self.runtime = runtime
        self.channels = channels
        self.settings = settings or Settings.from_environment()
        self.contacts = contacts
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.concurrency, thread_name_prefix="notify"
        )
        self._lock = threading.Lock()
        self._closed = False
        # Recorded rows up to this id were looked at by ``adopt`` (each once per process).
        self._adopted_up_to = 0

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        for channel in self.channels.values():
            try:
                channel.close()
            except Exception:
                log.exception("notify_channel_close_failed", channel=channel.name)

    # -- a pass ------------------------------------------------------------------------------

    def run_pass(self) -> int:
        """Claim what is due, send it, record it; again while batches come full, within the
        budget. How many messages were tried."""
        if self._closed or not self._lock.acquire(blocking=False):
            return 0
        try:
            done = 0
            started = time.monotonic()
            if self.channels:
                self.adopt()
            while not self._closed:
                claims = self.claim(self.settings.batch)
                if not claims:
                    break
                outcomes = list(self._pool.map(self.send, claims))
                made = self.record(outcomes)
                done += len(claims)
                # A batch not full is all that was due, unless it made reporters' rows.
                if len(claims) < self.settings.batch and not made:
                    break
                if time.monotonic() - started > self.settings.pass_budget_seconds:
                    break
            return done
        finally:
            self._lock.release()

    def claim(self, limit: int) -> list[Claim]:
        n = notifications.c
        now = self.runtime.operational_now()
        lease = now + dt.timedelta(seconds=self.settings.lease_seconds)
        with self.runtime.work() as work:
            city_now = work.now
            query = (
                sa.select(notifications)
                .where(
                    n.status == PENDING,
                    sa.or_(n.next_attempt_at.is_(None), n.next_attempt_at <= now),
                    sa.or_(n.not_before.is_(None), n.not_before <= city_now),
                    sa.or_(n.lease_until.is_(None), n.lease_until < now),
                )
                .order_by(n.urgent.desc(), n.id)
                .limit(limit)
            )
            if work.db.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = work.db.execute(query).all()
            if not rows:
                return []
            work.db.execute(
                sa.update(notifications)
                .where(n.id.in_([r.id for r in rows]))
                .values(lease_until=lease, attempts=n.attempts + 1)
            )
        return [
            Claim(
                id=r.id,
                lease=lease,
                case_id=r.case_id,
                assignment_id=r.assignment_id,
                person_id=r.person_id,
                role=r.role,
                created_at=r.created_at,
                kind=r.kind or "",
                subject=r.subject or "",
                text=r.text,
                context=r.context,
                channels=tuple(r.channels) if r.channels is not None else None,
                channel_index=r.channel_index,
                attempts=r.attempts + 1,
                address=r.address,
                urgent=r.urgent,
                message_key=r.message_key or str(r.id),
            )
            for r in rows
        ]

    # -- sending -----------------------------------------------------------------------------

    def send(self, claim: Claim) -> Outcome:
        composed: dict[str, Any] = {}
        if claim.person_id == REPORTER:
            return self._expand(claim)
        try:
            if claim.role == REPORTER:
                channels, address_of, text = self._resident(claim)
                composed = {"channels": channels, "text": text}
            else:
                channels, text = claim.channels or (), claim.text
                address_of = _staff_addresses(claim)
        except Exception as exc:  # intake did not answer: try again later
            return Outcome(claim, "-", OUTCOME_RETRY, _short(f"contacts unavailable: {exc}"))
        if claim.channel_index >= len(channels):
            return Outcome(
                claim, "-", OUTCOME_REFUSED, "no channel reaches this person", **composed
            )
        name = channels[claim.channel_index]
        channel = self.channels.get(name)
        if channel is None:
            return Outcome(claim, name, OUTCOME_REFUSED, "channel not configured here", **composed)
        address = address_of.get(channel.contact) if channel.contact else address_of.get(nc.PHONE)
        message = nc.OutgoingMessage(
            message_id=claim.message_key,
            case_id=claim.case_id,
            kind=claim.kind,
            subject=claim.subject,
            text=text,
            urgent=claim.urgent,
            address=address,
            recipient_name=(claim.context or {}).get("person"),
        )
        masked = privacy.mask_contact(address or "") if claim.role == REPORTER else None
        try:
            channel.send(message)
        except nc.ChannelUnavailable as exc:
            return Outcome(
                claim, name, OUTCOME_RETRY, _short(exc.reason), exc.retry_after, **composed
            )
        except nc.ChannelRefused as exc:
            return Outcome(claim, name, OUTCOME_REFUSED, _short(exc.reason), **composed)
        except secrets.SecretUnavailable as exc:
            return Outcome(claim, name, OUTCOME_REFUSED, _short(str(exc)), **composed)
        except Exception as exc:  # a channel's own bug: logged, retried like an outage
            log.exception("notify_channel_failed", channel=name)
            return Outcome(claim, name, OUTCOME_RETRY, _short(type(exc).__name__), **composed)
        return Outcome(claim, name, OUTCOME_SENT, None, address=masked, **composed)

    def _expand(self, claim: Claim) -> Outcome:
        """The case's reporters, one (contact digest, report id) each: a resident who left the
        same contact on two reports (or on a case merged into this one) is told once."""
        try:
            if self.contacts is None:
                raise LookupError("no way to ask intake for contacts in this process")
            found = self.contacts(claim.case_id, None, False)
        except Exception as exc:
            return Outcome(claim, "-", OUTCOME_RETRY, _short(f"contacts unavailable: {exc}"))
        reporters: dict[str, int] = {}
        for contact in found:
            key = "|".join(str(contact.get(f) or "") for f in nc.CONTACT_FIELDS)
            digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
            reporters.setdefault(digest, int(contact["report_id"]))
        return Outcome(
            claim,
            "-",
            OUTCOME_EXPANDED,
            f"{len(reporters)} reporter(s) to tell",
            reporters=list(reporters.items()),
        )

    def _resident(self, claim: Claim) -> tuple[tuple[str, ...], dict, str]:
        if self.contacts is None:
            raise LookupError("no way to ask intake for contacts in this process")
        report_id = (claim.context or {}).get("report_id")
        found = self.contacts(claim.case_id, report_id, True) if report_id is not None else []
        contact = found[0] if found else {}
        channels = np.resident_channels(contact.get("channel"), contact)
        # Intake knows the case as it stands (its category, once classified); the event did not.
        known = {k: contact[k] for k in ("category",) if contact.get(k)}
        context = {
            **(claim.context or {}),
            **known,
            "progress_url": contact.get("progress_url") or "",
        }
        _, text = notify_templates.render(claim.kind, context)
        return channels, {f: contact.get(f) for f in nc.CONTACT_FIELDS}, text

    # -- recording ---------------------------------------------------------------------------

    def record(self, outcomes: list[Outcome]) -> int:
        """Every outcome, each guarded by its claim's lease; how many reporters' rows an
        expansion made."""
        n = notifications.c
        now = self.runtime.operational_now()
        made = 0
        # A staff message sent as it was made (the common case) changes the same columns the
        # same way: one UPDATE per channel and lease, one INSERT of their log rows. Two
        # statements a row cost about 4.6 ms a message on a busy PostgreSQL (bench-notify),
        # more than sending it.
        plain: dict[tuple[str, dt.datetime], list[Outcome]] = {}
        rest: list[Outcome] = []
        for o in outcomes:
            SENDS.labels(o.channel, o.result).inc()
            if (
                o.result == OUTCOME_SENT
                and o.address is None
                and o.channels is None
                and o.text is None
            ):
                plain.setdefault((o.channel, o.claim.lease), []).append(o)
            else:
                rest.append(o)
        with self.runtime.work() as work:
            for (channel, lease), group in plain.items():
                recorded = (
                    work.db.execute(
                        sa.update(notifications)
                        .where(n.id.in_([o.claim.id for o in group]), n.lease_until == lease)
                        .values(
                            status=SENT,
                            sent_at=now,
                            channel=channel[:20],
                            last_error=None,
                            lease_until=None,
                        )
                        .returning(n.id)
                    )
                    .scalars()
                    .all()
                )
                if recorded:
                    work.db.execute(
                        sa.insert(attempts),
                        [
                            dict(
                                notification_id=i,
                                at=now,
                                channel=channel[:40],
                                outcome=OUTCOME_SENT,
                                error=None,
                            )
                            for i in sorted(recorded)
                        ],
                    )
            for o in rest:
                c = o.claim
                values: dict[str, Any] = {"lease_until": None}
                if o.channels is not None:
                    values["channels"] = list(o.channels)
                if o.text is not None:
                    values["text"] = o.text
                channels = o.channels if o.channels is not None else (c.channels or ())
                if o.result == OUTCOME_EXPANDED:
                    values.update(status=EXPANDED, sent_at=now, last_error=None)
                elif o.result == OUTCOME_SENT:
                    values.update(status=SENT, sent_at=now, channel=o.channel[:20], last_error=None)
                    if o.address is not None:
                        values["address"] = o.address
                elif o.result == OUTCOME_RETRY and c.attempts < self.settings.tries_per_channel:
                    wait = np.backoff(
                        c.attempts,
                        self.settings.backoff_base,
                        self.settings.backoff_cap,
                        o.retry_after,
                    )
                    values.update(next_attempt_at=now + dt.timedelta(seconds=wait))
                    values["last_error"] = o.error
                elif c.channel_index + 1 < len(channels):
                    # Refused here, or out of tries here: the person's next channel, at once.
                    values.update(
                        channel_index=c.channel_index + 1,
                        attempts=0,
                        next_attempt_at=now,
                        last_error=o.error,
                    )
                else:
                    values.update(status=FAILED, last_error=o.error)
                updated = work.db.execute(
                    sa.update(notifications)
                    .where(n.id == c.id, n.lease_until == c.lease)
                    .values(**values)
                ).rowcount
                if updated and o.reporters:
                    made += self._add_reporters(work, c, o.reporters, now)
                if updated:
                    work.db.execute(
                        sa.insert(attempts),
                        dict(
                            notification_id=c.id,
                            at=now,
                            channel=o.channel[:40],
                            outcome=o.result,
                            error=o.error,
                        ),
                    )
        return made

    def _add_reporters(
        self, work: Any, parent: Claim, reporters: list[tuple[str, int]], now: dt.datetime
    ) -> int:
        """One row per reporter, keyed (contact digest, case, kind): a second expansion (a
        replica whose lease ran out) inserts none again."""
        dialect = postgresql if work.db.dialect.name == "postgresql" else sqlite
        made = 0
        for digest, report_id in reporters:
            made += work.db.execute(
                dialect.insert(notifications)
                .values(
                    message_key=f"{REPORTER}:{digest}|{parent.case_id}|{parent.kind}"[:240],
                    case_id=parent.case_id,
                    assignment_id=parent.assignment_id,
                    person_id=f"{REPORTER}:{report_id}"[:40],
                    role=REPORTER,
                    channel=np.SMS,
                    address="",
                    reason=parent.kind,
                    kind=parent.kind,
                    subject=parent.subject,
                    text="",
                    context={**(parent.context or {}), "report_id": report_id},
                    channels=None,
                    urgent=parent.urgent,
                    status=PENDING,
                    next_attempt_at=now,
                    created_at=parent.created_at,
                )
                .on_conflict_do_nothing(index_elements=["message_key"])
            ).rowcount
        return made

    # -- what was recorded while no channel could send it --------------------------------------

    def adopt(self) -> int:
        """Recorded rows this process can send (one of their channels is configured here) go
        pending, or expire when older than the backlog allows; each row looked at once per
        process (a cursor on the id). How many went pending."""
        n = notifications.c
        adopted = expired = 0
        with self.runtime.work() as work:
            rows = work.db.execute(
                sa.select(n.id, n.role, n.channels, n.created_at)
                .where(n.status == RECORDED, n.id > self._adopted_up_to)
                .order_by(n.id)
                .limit(1000)
            ).all()
            if not rows:
                return 0
            oldest = work.now - dt.timedelta(hours=self.settings.backlog_hours)
            configured = set(self.channels)
            fresh: list[int] = []
            stale: list[int] = []
            for r in rows:
                wanted = RESIDENT_CHANNELS if r.role == REPORTER else set(r.channels or ())
                if not wanted & configured:
                    continue
                (fresh if r.created_at >= oldest else stale).append(r.id)
            if fresh:
                adopted = work.db.execute(
                    sa.update(notifications)
                    .where(n.id.in_(fresh), n.status == RECORDED)
                    .values(status=PENDING, next_attempt_at=None)
                ).rowcount
            if stale:
                expired = work.db.execute(
                    sa.update(notifications)
                    .where(n.id.in_(stale), n.status == RECORDED)
                    .values(
                        status=EXPIRED,
                        last_error=(
                            "recorded while no channel could send it; older than "
                            f"{self.settings.backlog_hours:g} h when one could"
                        ),
                    )
                ).rowcount
            self._adopted_up_to = rows[-1].id
        if adopted or expired:
            UNSENT.labels("adopted").inc(adopted)
            UNSENT.labels("expired").inc(expired)
            log.warning(
                "notify_recorded_messages_taken_up",
                adopted=adopted,
                expired=expired,
                channels=sorted(self.channels),
            )
        return adopted


def _staff_addresses(claim: Claim) -> dict[str, str | None]:
    """A person's contacts as people.csv gave them when the message was made."""
    given = (claim.context or {}).get("contacts") or {}
    return {f: given.get(f) for f in nc.CONTACT_FIELDS}


def _short(text: str) -> str:
    return text[:500]


def worker_of(runtime: ServiceRuntime) -> DeliveryWorker:
    """The process's worker, made on first use from the environment."""
    worker = runtime.extras.get(WORKER_KEY)
    if worker is None:
        worker = DeliveryWorker(
            runtime,
            build_channels(channel_options()),
            contacts=runtime.extras.get(CONTACTS_KEY),
        )
        runtime.extras[WORKER_KEY] = worker
        if not worker.channels:
            # Said once per process, loudly: what notify records here is not sent until a
            # process with a channel takes it up (docs/notifications.md).
            log.warning(
                "notify_no_channel_configured",
                hint=f"messages are recorded, not sent; set {CHANNELS_ENV}",
            )
    return worker


def recorded_unsent(runtime: ServiceRuntime, count: int = 1) -> None:
    """A message recorded that no channel here can send (counted; ``adopt`` takes it up)."""
    UNSENT.labels("no_channel").inc(count)


def configured(runtime: ServiceRuntime) -> set[str]:
    return set(worker_of(runtime).channels)


def run_deliveries(runtime: ServiceRuntime) -> int:
    """Notify's periodic work (``ServiceDefinition.periodic``)."""
    return worker_of(runtime).run_pass()
