"""What intake's API asks of the other services, whatever carries the question.

The nameko IntakeService answers it with RPC proxies (``service.NamekoPeers``), the embedded
default by calling the other services' runtimes in the same process. Every question is bounded
in time: a service that does not answer is named, never waited for.
"""

from __future__ import annotations

from typing import Protocol

from gridflow_common.reset import ResetOrder

# How long intake waits for routing to say who holds a case.
ASSIGNMENT_TIMEOUT_SECONDS = 2.0
# How long intake waits for notify to list the notices sent for a case (the case page's panel).
NOTIFICATIONS_TIMEOUT_SECONDS = 2.0


class PeerUnavailable(Exception):
    """A service did not answer in time (or failed answering): ``service`` and why."""

    def __init__(self, service: str, why: str):
        super().__init__(f"{service} {why}")
        self.service = service
        self.why = why


class Peers(Protocol):
    def current_assignment(self, case_id: str) -> dict | None:
        """Routing's current assignment of the case (assignment_id, holder, lead, tier,
        assisting, category, seq), None when it has none. Raises PeerUnavailable when routing
        does not answer within ``ASSIGNMENT_TIMEOUT_SECONDS``."""

    def case_notifications(self, case_id: str) -> dict:
        """Notify's record of the notices sent for the case: ``{"items": [...], "more": bool}``,
        the latest ``recipients.MAX_LISTED`` as ``recipients.listed_notice`` shapes them
        (contacts masked, instants in UTC). Raises PeerUnavailable when notify does not answer
        within ``NOTIFICATIONS_TIMEOUT_SECONDS``. Asked only for a case the caller may read."""

    def prepare_reset(self, order: ResetOrder) -> dict[str, str]:
        """Ask every other service whether it can take part in ``order``, all at once and
        within ``reset.READY_TIMEOUT_SECONDS``. Returns service -> why not, for each that
        cannot or did not answer; empty when all can. Changes nothing."""

    def execute_reset(self, order: ResetOrder) -> dict[str, str]:
        """Have every other service empty its tables under ``order``, all at once and until
        its deadline. Returns service -> why not, for each that did not confirm."""
