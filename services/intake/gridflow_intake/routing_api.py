"""``GET /api/v1/cases/{case_id}/routing``: why the case went where it went, in a sentence a
clerk reads (Chinese, with names), with the structured fields and every decision before it.

Each routing decision reaches intake on ``case_dispatched`` (routing's decision, forwarded by
departments) and is kept in the case's timeline (``routed`` entries, with the rule that fired
and the rule version); this endpoint reads them back, scoped like ``GET /api/v1/cases/{id}``
(a case the caller may not see is the same 404 as one that does not exist).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from marshmallow import Schema, fields

from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.rules import TAXONOMY
from gridflow_intake.models import timeline

# How a time limit's unit reads in a sentence.
_UNIT_WORDS = {
    "minutes": "分钟",
    "hours": "小时",
    "working_hours": "个工作小时",
    "working_days": "个工作日",
}
# What moved the case, as a clerk says it (vocabulary.REASON_*).
_REASON_WORDS = {
    v.REASON_NEW: "派至",
    v.REASON_ESCALATED: "升级派至",
    v.REASON_RETURNED: "退回后改派至",
    v.REASON_REWORK: "返工，仍派至",
    v.REASON_RECLASSIFIED: "重新分类后派至",
    v.REASON_ASSIGNED: "由指挥中心指派至",
}


class RoutingLimitSchema(Schema):
    amount = fields.Integer(required=True)
    unit = fields.String(required=True)
    rule_id = fields.String(allow_none=True)


class RoutingDecisionSchema(Schema):
    at = fields.String(required=True, metadata={"description": "ISO 8601, the city's zone"})
    reason = fields.String(required=True)
    tier = fields.String(allow_none=True)
    holder = fields.String(allow_none=True)
    holder_name = fields.String(allow_none=True)
    lead = fields.String(allow_none=True)
    assisting = fields.List(fields.String())
    rule_id = fields.String(required=True, metadata={"description": "or 'taxonomy'"})
    rule_name = fields.String(allow_none=True)
    rule_version = fields.Integer(allow_none=True)
    time_limit = fields.Nested(RoutingLimitSchema, allow_none=True)
    explanation = fields.String(metadata={"description": "routing's own reasoning"})
    sentence = fields.String(required=True, metadata={"description": "for a clerk, Chinese"})


class CaseRoutingSchema(Schema):
    case_id = fields.String(required=True)
    sentence = fields.String(allow_none=True)
    current = fields.Nested(RoutingDecisionSchema, allow_none=True)
    decisions = fields.List(fields.Nested(RoutingDecisionSchema), required=True)


def holder_words(j: Any, code: str | None) -> str:
    """A holder as a clerk names it: a station with its department's bureau before it
    (鹿城区公安分局五马派出所), any other unit or department by its name."""
    if not code:
        return "未定单位"
    unit = j.unit(code)
    if unit is not None and unit.kind == v.STATION and unit.department_code:
        department = j.department(unit.department_code)
        if department is not None:
            return f"{department.name_zh}{unit.name}"
    return j.holder_name(code) or code


def limit_words(limit: dict) -> str:
    return f"{limit['amount']}{_UNIT_WORDS.get(limit['unit'], limit['unit'])}"


def decision_view(j_for: Any, entry: Any, fallback_version: int) -> dict:
    """One ``routed`` timeline entry as the answer shows it. ``j_for(version)`` gives the
    jurisdiction a decision was made under (names and rule names are that version's)."""
    d = entry.detail or {}
    version = d.get("rule_version") or fallback_version
    j = j_for(version)
    rule_id = d.get("rule_id") or TAXONOMY
    rule = j.rules.rule(rule_id) if rule_id != TAXONOMY else None
    local = j.local(entry.at.replace(tzinfo=entry.at.tzinfo or dt.timezone.utc))
    holder = d.get("handler")
    moved = _REASON_WORDS.get(d.get("reason", ""), "派至")
    when = f"{local.month}月{local.day}日{local:%H:%M}"
    if rule_id != TAXONOMY:
        named = f"（{rule.name}）" if rule is not None and rule.name else ""
        why = f"按规则 {rule_id}{named}"
    elif d.get("reason") == v.REASON_ASSIGNED:
        why = "按指挥中心指令"
    else:
        why = "按分类目录（未触发城市规则）"
    sentence = f"{why}于{when}{moved}{holder_words(j, holder)}；规则版本 {version}"
    limit = d.get("time_limit")
    if limit:
        sentence += f"；时限按规则 {limit.get('rule_id')} 定为{limit_words(limit)}"
    return {
        "at": local.isoformat(),
        "reason": d.get("reason", ""),
        "tier": d.get("tier"),
        "holder": holder,
        "holder_name": j.holder_name(holder),
        "lead": d.get("lead"),
        "assisting": list(d.get("assisting") or ()),
        "rule_id": rule_id,
        "rule_name": rule.name if rule is not None else None,
        "rule_version": version,
        "time_limit": limit,
        "explanation": d.get("explanation") or "",
        "sentence": sentence,
    }


class RoutingEndpoints:
    """Mixed into ``IntakeApi`` (it brings ``runtime`` and ``_readable_case``)."""

    runtime: Any

    def _readable_case(self, work: Any, call: Any, case_id: str) -> Any: ...

    def get_case_routing(self, call: Any, case_id: str) -> Any:
        from gridflow_intake.api import Answer
        from gridflow_intake.models import cases

        with self.runtime.work() as work:
            self._readable_case(work, call, case_id)
            version = work.db.execute(
                sa.select(cases.c.jurisdiction_version).where(cases.c.case_id == case_id)
            ).scalar_one()
            entries = work.db.execute(
                sa.select(timeline.c.at, timeline.c.detail)
                .where(timeline.c.case_id == case_id, timeline.c.kind == v.ENTRY_ROUTED)
                .order_by(timeline.c.at, timeline.c.id)
            ).all()
            decisions = [decision_view(work.jurisdiction, e, version) for e in entries]
        current = decisions[-1] if decisions else None
        return Answer(
            200,
            {
                "case_id": case_id,
                "sentence": current["sentence"] if current else None,
                "current": current,
                "decisions": decisions,
            },
        )
