"""What every channel endpoint shares (Open311, WeChat, sensors): a channel's key checked for
that channel and spent against its rate limit, and a report registered through the same path
as ``POST /api/v1/reports`` (``handlers.register_report``, its progress link, its audit line).

A key of one channel never posts as another: the key's channel is compared with the channel the
endpoint takes reports for (``access.may_report``), whatever the body claims.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from gridflow_common import metrics
from gridflow_common.domain import access as a
from gridflow_intake import handlers as h
from gridflow_intake import progress as pg
from gridflow_intake.access import Caller, Forbidden, Unauthenticated


class ChannelKeyRefused(Exception):
    """A channel endpoint's key is missing, unknown or another channel's. ``status``: 401 for
    missing or not valid, 403 for a good key of another channel."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(message)
        self.status = status
        self.field = field


class ChannelIntake:
    """Mixed into IntakeApi; the endpoints of the channel modules call these."""

    access: Any
    runtime: Any

    def channel_caller(self, call: Any, token: str | None, channel: str, field: str) -> Caller:
        """The caller a channel key ``token`` makes, when it is a live key of ``channel``; its
        rate limit spent. Refusals are audited by the door (401/403)."""
        if not token:
            raise ChannelKeyRefused(401, field, f"give the {channel!r} channel's key")
        resolved = self.access.store.resolve(token.strip())
        if resolved is None or resolved[1]["kind"] != a.CHANNEL_KEY:
            self.access.limit_failed_credential(call.caller.address)
            raise ChannelKeyRefused(
                401, field, "the key is not valid (unknown, expired or revoked)"
            )
        principal, record = resolved
        caller = Caller(principal, call.caller.address, record)
        call.caller = caller
        allowed, _, why = a.may_report(principal, channel)
        if not allowed:
            raise ChannelKeyRefused(403, field, why)
        self.access.limit(caller)
        return caller

    def header_channel_caller(self, call: Any, channel: str) -> Caller:
        """For a JSON channel endpoint behind the door's own authentication (Bearer/X-Api-Key):
        a key of ``channel``, or a user who may report on any channel (the command center, an
        admin: ``access.may_report``); a key of another channel is refused (403)."""
        principal = call.principal
        if principal is None:
            raise Unauthenticated(f"give the {channel!r} channel's key ('Authorization: Bearer')")
        allowed, _, why = a.may_report(principal, channel)
        if not allowed:
            raise Forbidden(why, field="authorization")
        return call.caller

    def register_channel_report(
        self, call: Any, report: dict, after: Any = None
    ) -> tuple[int, dict, str]:
        """(status, answer, progress token): ``register_report`` as ``POST /api/v1/reports``
        calls it, with the request's audit line in its unit of work. ``after(work, status,
        answer)`` runs in that unit of work too (a channel's own note)."""
        for attempt in (1, 2):
            token, token_hash = pg.new_progress_token()
            try:
                with self.runtime.work() as work:
                    status, answer = h.register_report(work, report, token_hash)
                    if after is not None:
                        after(work, status, answer)
                    self._audit_within(work, call, status)  # type: ignore[attr-defined]
                break
            except IntegrityError:
                # Two copies of one (channel, external_id) raced; the loser answers as a resend.
                if attempt == 2:
                    raise
        if status == 201:
            metrics.CASES_REGISTERED.labels(report["channel"]).inc()
        return status, answer, token
