"""Messages the other services send intake, built as they build them, for intake's tests."""

from __future__ import annotations

import datetime as dt

from gridflow_common import contracts as c
from gridflow_common.domain import vocabulary as v

_ACTIONS = {v.YELLOW: v.ACTION_REMIND, v.ORANGE: v.ACTION_SUPERVISE, v.RED: v.ACTION_ESCALATE}


def colour_changed(case_id: str, assignment_id: str, colour: str, at: dt.datetime) -> dict:
    """SLA's announcement that an assignment's clock entered ``colour`` at ``at``."""
    payload = {
        "case_id": case_id,
        "assignment_id": assignment_id,
        "colour": colour,
        "action": _ACTIONS[colour],
        "fraction": 1.0,
        "jurisdiction_version": 1,
    }
    return c.make_event(c.SLA, c.CASE_COLOUR_CHANGED, at, payload).to_message()
