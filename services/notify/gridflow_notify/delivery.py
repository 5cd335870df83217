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

Channels are configured per process by ``GRIDFLOW_NOTIFY_CHANNELS``: a JSON object ``{name:
options}`` or ``file:/path.json``, each name a channel installed in ``gridflow.notify_channels``
(its options checked by the channel's schema at start). A message whose channels are all
unconfigured here is only recorded (status ``recorded``), as before channels existed.
"""

from __future__ import annotations

import datetime as dt
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

WORKER_KEY = "notify_delivery"
CONTACTS_KEY = "reporter_contacts"  # runtime.extras: case_id -> intake's reporter contacts

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
RECORDED = "recorded"
REPORTER = "reporter"

OUTCOME_SENT = "sent"
OUTCOME_RETRY = "retry"
OUTCOME_REFUSED = "refused"


@dataclass(frozen=True)
class Settings:
    lease_seconds: float = 120.0
    backoff_base: float = np.DEFAULT_BACKOFF_BASE
    backoff_cap: float = np.DEFAULT_BACKOFF_CAP
    # Tries on one channel before the message moves to the next.
    tries_per_channel: int = np.DEFAULT_MAX_ATTEMPTS
    concurrency: int = 8
    batch: int = 64
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
    person_id: str
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


class DeliveryWorker:
    def __init__(
        self,
        runtime: ServiceRuntime,
        channels: dict[str, nc.NotifyChannel],
        settings: Settings | None = None,
        contacts: Callable[[str], list[dict]] | None = None,
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
            while not self._closed:
                claims = self.claim(self.settings.batch)
                if not claims:
                    break
                outcomes = list(self._pool.map(self.send, claims))
                self.record(outcomes)
                done += len(claims)
                if len(claims) < self.settings.batch:
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
                person_id=r.person_id,
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
        try:
            if claim.person_id == REPORTER:
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
        )
        masked = privacy.mask_contact(address or "") if claim.person_id == REPORTER else None
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

    def _resident(self, claim: Claim) -> tuple[tuple[str, ...], dict, str]:
        if self.contacts is None:
            raise LookupError("no way to ask intake for contacts in this process")
        found = self.contacts(claim.case_id)
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

    def record(self, outcomes: list[Outcome]) -> None:
        n = notifications.c
        now = self.runtime.operational_now()
        with self.runtime.work() as work:
            for o in outcomes:
                c = o.claim
                values: dict[str, Any] = {"lease_until": None}
                if o.channels is not None:
                    values["channels"] = list(o.channels)
                if o.text is not None:
                    values["text"] = o.text
                channels = o.channels if o.channels is not None else (c.channels or ())
                if o.result == OUTCOME_SENT:
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
    return worker


def configured(runtime: ServiceRuntime) -> set[str]:
    return set(worker_of(runtime).channels)


def run_deliveries(runtime: ServiceRuntime) -> int:
    """Notify's periodic work (``ServiceDefinition.periodic``)."""
    return worker_of(runtime).run_pass()
