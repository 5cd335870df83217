"""Three-tier routing (三级流转): who holds a case, decided from the jurisdiction alone.

- community: the community office of the place (``office-<community>``); no lead department.
- street: the lead department's station in that street; when that department has no station
  there, the case goes to the district instead.
- district: the lead department's bureau, with the category's assisting departments; a case with
  no clear responsible department goes to the command center, lead none.
- Going up (beyond authority, a red warning, a command order) moves one tier; a reclassified
  category moves the case to that category's tier when that is higher. A district case that goes
  up again goes to the command center.
- A return (退回, not our remit) re-routes at the same tier from the category the department
  names, or to the command center without one; a second return goes to the command center.
- At the command center there is nowhere further to go: a return or a ``beyond_authority`` there
  moves nothing and counts nothing; the case waits for the command center's order
  (``AwaitsOrder``).

Every decision carries an explanation so the command center can see why a case went where it did.
Standard library only: the jurisdiction object is passed in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.calendar import TimeLimit
from gridflow_common.domain.rules import TAXONOMY, Facts, Fired, Rule
from gridflow_common.domain.vocabulary import (
    BEYOND_AUTHORITY,
    COMMUNITY,
    DISTRICT,
    RETURNED,
    STREET,
    TIERS,
)

TIER_ORDER = TIERS
COMMAND = "command"  # not a tier of its own: the district tier held by the command center


@dataclass(frozen=True)
class Assignment:
    tier: str
    holder: str
    lead: str | None
    assisting: tuple[str, ...] = ()
    explanation: str = ""
    at_command: bool = field(default=False)
    # The city's rule that decided the holder (rules.yaml), or ``taxonomy`` (categories.csv).
    rule_id: str = TAXONOMY
    # A rule's time limit for this assignment instead of the category's, and that rule's id.
    time_limit: TimeLimit | None = None
    limit_rule_id: str | None = None


def _rank(tier: str) -> int:
    return TIER_ORDER.index(tier)


# Explanations are read by the command center's clerks: Chinese, with the jurisdiction's names
# for categories, departments and units (their codes are in the case view beside them).
def _dept(j: Any, code: str | None) -> str:
    department = j.department(code) if code else None
    return department.name_zh if department else (code or "")


def _place(area: Any | None) -> str:
    return area.name if area is not None and area.name else "该地"


def _command_center(j: Any, area_code: str, why: str) -> Assignment:
    district = j.ancestor(area_code, DISTRICT)
    unit = j.command_center(district.code) if district else None
    if unit is None:
        raise RoutingImpossible(f"no command center for area {area_code}")
    return Assignment(DISTRICT, unit.code, None, (), f"{why}，转{unit.name}研判", at_command=True)


@dataclass(frozen=True)
class AwaitsOrder:
    """The case stays with the command center that holds it, with the same assignment and clock,
    until the command center orders what happens next; nothing moved, so nothing is counted."""

    holder: str
    explanation: str


def _awaits_order(current: Assignment, why: str) -> AwaitsOrder:
    return AwaitsOrder(
        current.holder, f"案件已在指挥中心，再次{v.zh(why)}不再流转，等待指挥中心指令"
    )


class RoutingImpossible(Exception):
    """The jurisdiction has no unit that can hold the case (a data problem, not a case problem)."""


def assign_at_tier(j: Any, tier: str, category: Any | None, area_code: str) -> Assignment:
    """The holder of a case of ``category`` at ``tier`` for a place in ``area_code``."""
    if category is None or not category.lead_department and tier != COMMUNITY:
        return _command_center(j, area_code, "责任部门不明确")
    if tier == COMMUNITY:
        community = j.ancestor(area_code, COMMUNITY)
        office = j.community_office(community.code) if community else None
        if office is not None:
            return Assignment(
                COMMUNITY,
                office.code,
                None,
                (),
                f"{category.name_zh}由社区先行处置：{office.name}",
            )
        tier = STREET  # a place known only to street level has no community office to hold it
    if tier == STREET:
        street = j.ancestor(area_code, STREET)
        station = j.station(category.lead_department, street.code) if street else None
        if station is not None:
            return Assignment(
                STREET,
                station.code,
                category.lead_department,
                tuple(category.assisting_departments),
                f"{category.name_zh}由{_dept(j, category.lead_department)}牵头："
                f"派至其在{_place(street)}的站所{station.name}",
            )
        why = f"{_dept(j, category.lead_department)}在{_place(street)}没有站所，上报区级"
        return _district(j, category, area_code, why)
    return _district(j, category, area_code, f"{category.name_zh}由区级处置")


def _district(j: Any, category: Any, area_code: str, why: str) -> Assignment:
    district = j.ancestor(area_code, DISTRICT)
    bureau = j.bureau(category.lead_department, district.code) if district else None
    if bureau is None:
        return _command_center(j, area_code, f"{why}；本区没有{_dept(j, category.lead_department)}")
    return Assignment(
        DISTRICT,
        bureau.code,
        category.lead_department,
        tuple(category.assisting_departments),
        f"{why}：由{bureau.name}牵头",
    )


def route_new_case(j: Any, category: Any | None, area_code: str) -> Assignment:
    if category is None:
        return _command_center(j, area_code, "报告无法自动分类")
    return assign_at_tier(j, category.default_tier, category, area_code)


def escalate(
    j: Any, current: Assignment, category: Any | None, area_code: str, reclassified: bool = False
) -> Assignment | AwaitsOrder:
    """One tier up, or to the reclassified category's own tier when that is higher."""
    if current.at_command:
        return _awaits_order(current, BEYOND_AUTHORITY)
    if current.tier == DISTRICT:
        return _command_center(j, area_code, "区级案件再次上报")
    target = TIER_ORDER[_rank(current.tier) + 1]
    if reclassified and category is not None and _rank(category.default_tier) > _rank(target):
        target = category.default_tier
    return assign_at_tier(j, target, category, area_code)


def reroute_returned(
    j: Any, current: Assignment, named_category: Any | None, area_code: str, returns_so_far: int
) -> Assignment | AwaitsOrder:
    """Re-route a case its holder returned (退回). ``returns_so_far`` counts this one."""
    if current.at_command:
        # Sending it "back" to the command center that already holds it would be a new
        # assignment and a new clock for a case that did not move.
        return _awaits_order(current, RETURNED)
    if returns_so_far >= 2:
        return _command_center(j, area_code, "案件已两次退回")
    if named_category is None:
        return _command_center(j, area_code, "退回时未指明正确的类别")
    return assign_at_tier(j, current.tier, named_category, area_code)


# The tier a unit holds its cases at, by its kind (units.csv).
TIER_OF_UNIT_KIND = {
    v.COMMUNITY_OFFICE: COMMUNITY,
    v.STREET_CENTER: STREET,
    v.STATION: STREET,
    v.BUREAU: DISTRICT,
    v.COMMAND_CENTER: DISTRICT,
}


def assign_to_unit(unit: Any, category: Any | None, reason: str | None) -> Assignment:
    """The command center's order (指派): ``unit`` holds the case, at that unit's tier; a
    department's unit leads for its department, with the category's assisting departments at
    the district tier as routing would give them. Not an escalation."""
    tier = TIER_OF_UNIT_KIND.get(unit.kind, DISTRICT)
    at_command = unit.kind == v.COMMAND_CENTER
    lead = unit.department_code
    assisting: tuple[str, ...] = ()
    if lead is not None and category is not None and unit.kind != v.COMMUNITY_OFFICE:
        assisting = tuple(d for d in category.assisting_departments if d != lead)
    why = f"指挥中心指派：由{unit.name}办理" + (f"（{reason}）" if reason else "")
    return Assignment(tier, unit.code, lead, assisting, why, at_command=at_command)


def reopen(current: Assignment, reason: str | None) -> Assignment:
    """A closed case reopened by order goes back to the unit that last held it, as rework."""
    why = "指挥中心指令重新办理：仍由原处置单位办理" + (f"（{reason}）" if reason else "")
    return Assignment(
        current.tier, current.holder, current.lead, current.assisting, why, current.at_command
    )


# --------------------------------------------------------------------------- the city's rules


def _rule_words(rule: Rule) -> str:
    return f"按规则{rule.id}" + (f"（{rule.name}）" if rule.name else "")


def _by_rule(j: Any, rule: Rule, category: Any, area_code: str) -> Assignment:
    """The holder ``rule`` names for a case of ``category`` (not None) in ``area_code``."""
    if rule.unit is not None:
        unit = j.unit(rule.unit)
        lead = unit.department_code
        assisting = tuple(d for d in category.assisting_departments if d != lead)
        if unit.kind == v.COMMUNITY_OFFICE:
            lead, assisting = None, ()
        why = f"派至{unit.name}"
        return Assignment(
            TIER_OF_UNIT_KIND.get(unit.kind, DISTRICT),
            unit.code,
            lead,
            assisting,
            why,
            at_command=unit.kind == v.COMMAND_CENTER,
        )
    if rule.department is not None:
        category = dataclasses.replace(
            category,
            lead_department=rule.department,
            assisting_departments=tuple(
                d for d in category.assisting_departments if d != rule.department
            ),
        )
    tier = rule.start_tier or category.default_tier
    if rule.up_one_tier:
        if tier == DISTRICT:
            return _command_center(j, area_code, f"{category.name_zh}属重大情形，升一级")
        tier = TIER_ORDER[_rank(tier) + 1]
    return assign_at_tier(j, tier, category, area_code)


def route_by_rules(j: Any, category: Any | None, facts: Facts) -> Assignment:
    """A new case routed by the jurisdiction's rules (``j.rules``) over its taxonomy: the rule
    that fired names the holder, else the taxonomy does (``route_new_case``); a rule's time
    limit, when one fires, rides on the assignment. A case nobody could classify goes to the
    command center whatever the rules say (its category is for the command center to find)."""
    fired = j.rules.decide(facts) if j.rules and category is not None else Fired()
    if fired.route is None:
        decided = route_new_case(j, category, facts.area_code)
    else:
        decided = _by_rule(j, fired.route, category, facts.area_code)
        decided = dataclasses.replace(
            decided,
            rule_id=fired.route.id,
            explanation=f"{_rule_words(fired.route)}：{decided.explanation}",
        )
    return with_limit(decided, fired.limit)


def with_limit(decided: Assignment, rule: Rule | None) -> Assignment:
    """``decided`` with ``rule``'s time limit (None: the category's own)."""
    if rule is None or rule.time_limit is None:
        return decided
    return dataclasses.replace(decided, time_limit=rule.time_limit, limit_rule_id=rule.id)


def limit_rule(j: Any, facts: Facts) -> Rule | None:
    """The rule whose time limit applies to an assignment of a case with ``facts``, if any."""
    if not j.rules or facts.category is None:
        return None
    return j.rules.decide(facts).limit
