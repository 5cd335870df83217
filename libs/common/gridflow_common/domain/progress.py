"""What a reporter sees of their case through their progress link (进度查询). Standard library
only.

A resident reads the case's road from registration to its close, in Chinese, and nothing the
city keeps for itself: no holder's note, no verifier's remark, no routing explanation, no SLA
colour or warning (those are the city's own pressure on its units, not a promise to the
resident), nothing about other people who reported the same problem (not their names or phones,
not even how many they are) and nothing about the reporter themself. Where several reports
joined one case, each reporter sees the same road and nothing that tells them apart.

The milestones are chosen, not filtered: a timeline entry of a kind not named here is left out,
so a kind added to the timeline later stays private until someone decides a resident may see it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gridflow_common.domain import lifecycle
from gridflow_common.domain import vocabulary as v

# The milestones a resident sees, by the kind the timeline records them under.
MILESTONE_REGISTERED = "registered"
MILESTONE_DISPATCHED = "dispatched"
MILESTONE_ACCEPTED = "accepted"
MILESTONE_IN_PROGRESS = "in_progress"
MILESTONE_RESOLVED = "resolved"
MILESTONE_REWORK = "rework"
MILESTONE_CLOSED = "closed"
MILESTONE_EVALUATED = "evaluated"

# timeline kind -> (milestone, its Chinese name). A dispatch's name also says to whom.
_MILESTONES: dict[str, tuple[str, str]] = {
    v.REGISTERED: (MILESTONE_REGISTERED, "已受理立案"),
    v.DISPATCHED: (MILESTONE_DISPATCHED, "已派遣"),
    v.ACCEPTED: (MILESTONE_ACCEPTED, "承办单位已签收"),
    v.IN_PROGRESS: (MILESTONE_IN_PROGRESS, "处置中"),
    v.RESOLVED: (MILESTONE_RESOLVED, "已处置，待核查"),
    v.ENTRY_VERIFICATION_FAILED: (MILESTONE_REWORK, "核查未通过，重新处置"),
    v.ENTRY_VERIFIED: (MILESTONE_CLOSED, "核查通过，已结案"),
    v.ENTRY_EVALUATED: (MILESTONE_EVALUATED, "已评价"),
}
MILESTONE_REJECTED = "rejected"
MILESTONE_ON_HOLD = "on_hold"
MILESTONE_RESUMED = "resumed"
MILESTONE_REOPENED = "reopened"
MILESTONE_MERGED = "merged"
# The command center's orders a resident sees (timeline kind ``order``, by the order's kind); a
# refusal to register (不予立案) says why, as the reporter is told. Assign and escalate show as
# the next dispatch; supervision and comments are the city's own.
_ORDER_MILESTONES: dict[str, tuple[str, str]] = {
    v.ORDER_REJECT: (MILESTONE_REJECTED, "不予立案"),
    v.ORDER_HOLD: (MILESTONE_ON_HOLD, "已列入长期跟踪（挂账）"),
    v.ORDER_RELEASE: (MILESTONE_RESUMED, "恢复办理"),
    v.ORDER_REOPEN: (MILESTONE_REOPENED, "重新办理"),
    v.ORDER_MERGE: (MILESTONE_MERGED, "已与同一事项合并办理"),
}
# Left out on purpose (and anything not named above): routed (routing's reasoning), warning (SLA
# colours), awaiting_order (the command center's queue), report_joined (other reporters),
# returned and beyond_authority (a unit handing the case on: the resident sees the next dispatch).

# Who gave an evaluation, as the timeline records it when it came through a progress link.
BY_REPORTER = "reporter"


@dataclass(frozen=True)
class Entry:
    """A timeline entry as the case register keeps it."""

    at: dt.datetime
    kind: str
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class Milestone:
    at: dt.datetime
    kind: str
    name: str


def milestones(entries: Iterable[Entry], unit_name: Callable[[str], str | None]) -> list[Milestone]:
    """The resident's milestones among ``entries`` (in the order given). ``unit_name`` names a
    holder's code in the city's words (None when the jurisdiction no longer knows it)."""
    out: list[Milestone] = []
    for entry in entries:
        if entry.kind == v.ENTRY_ORDER:
            known = _ORDER_MILESTONES.get(str(entry.detail.get("order")))
        else:
            known = _MILESTONES.get(entry.kind)
        if known is None:
            continue
        kind, name = known
        reason = entry.detail.get("reason")
        if kind == MILESTONE_REJECTED and isinstance(reason, str) and reason:
            name = f"{name}：{reason}"
        if kind == MILESTONE_DISPATCHED:
            holder = entry.detail.get("handler")
            unit = unit_name(holder) if isinstance(holder, str) else None
            name = f"已派遣至{unit}" if unit else "已派遣至承办单位"
        out.append(Milestone(entry.at, kind, name))
    return out


def can_evaluate(status: str, satisfaction: int | None) -> bool:
    """Whether the case takes an evaluation now: the lifecycle's rule, asked, not restated."""
    try:
        lifecycle.check_evaluation(status, satisfaction)
    except lifecycle.LifecycleError:
        return False
    return True
