"""Who is notified of what (通知对象), and what they read. Standard library only.

- A dispatch, whatever its reason (new, escalated, returned, rework, reclassified), goes to the
  duty person of the unit that now holds the case.
- A colour's action: ``remind_handler`` reminds the holder's duty person; ``supervise`` (督办)
  reaches the duty person and the unit's leader; ``escalate`` reaches the leader.
- A case waiting at the command center for its order goes to the command center's duty person.
- The command center's supervision order (督办) goes to the holder's duty person and its leader.
- A dispatch with assisting departments (协办) also goes to the duty person of each unit the case
  was given to as assisting.
- A unit that could not be reached after the last try (undeliverable) goes to the duty person of
  the command center of the unit's district.

The duty role depends on the kind of unit that holds the case (people.csv names one per kind).
A unit's leader is its own when people.csv names one, else the leader of the unit above it: a
station's is its department's bureau, a community office's its street center, a street
center's or a bureau's the district command center.
Every text is Chinese: vocabulary terms are shown by their Chinese names (``vocabulary.zh``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gridflow_common.domain import privacy
from gridflow_common.domain import vocabulary as v

# Stands for "the duty role of the holder's kind of unit" in the tables below.
DUTY = "duty"

DUTY_ROLE: dict[str, str] = {
    v.STATION: v.ROLE_STATION_DUTY,
    v.BUREAU: v.ROLE_BUREAU_DUTY,
    v.COMMAND_CENTER: v.ROLE_COMMAND_DUTY,
    v.STREET_CENTER: v.ROLE_STREET_DUTY,
    v.COMMUNITY_OFFICE: v.ROLE_COMMUNITY_STAFF,
}

WHO_FOR_DISPATCH: dict[str, tuple[str, ...]] = {reason: (DUTY,) for reason in v.ROUTING_REASONS}
WHO_FOR_ACTION: dict[str, tuple[str, ...]] = {
    v.ACTION_NONE: (),
    v.ACTION_REMIND: (DUTY,),
    v.ACTION_SUPERVISE: (DUTY, v.ROLE_LEADER),
    v.ACTION_ESCALATE: (v.ROLE_LEADER,),
}
WHO_AWAITING_ORDER: tuple[str, ...] = (DUTY,)
# The command center's supervision order (督办) reminds the holder and its leader.
WHO_SUPERVISED: tuple[str, ...] = (DUTY, v.ROLE_LEADER)
WHO_ASSISTS: tuple[str, ...] = (DUTY,)
WHO_HEARS_OF_UNDELIVERABLE: tuple[str, ...] = (v.ROLE_COMMAND_DUTY,)
# Why a notice was sent, beside the vocabulary's (dispatched, a colour's action, awaiting_order).
REASON_ASSISTING = "assisting"
REASON_UNDELIVERABLE = "undeliverable"

UNCLASSIFIED_ZH = "待分类事项"
_HEAD = "【网格化管理】"


@dataclass(frozen=True)
class Notice:
    """One message to one person: why (dispatched, a colour's action, awaiting_order), and its
    text."""

    person: Any  # a jurisdiction Person
    reason: str
    text: str


def roles_for(unit_kind: str, who: Iterable[str]) -> tuple[str, ...]:
    """The people.csv roles that ``who`` names at a unit of ``unit_kind``."""
    return tuple(DUTY_ROLE[unit_kind] if w == DUTY else w for w in who)


def _above(j: Any, unit: Any) -> Any | None:
    district = j.ancestor(unit.area_code, v.DISTRICT)
    if unit.kind == v.STATION:
        return j.bureau(unit.department_code, district.code) if district else None
    if unit.kind == v.COMMUNITY_OFFICE:
        street = j.ancestor(unit.area_code, v.STREET)
        return j.street_center(street.code) if street else None
    if unit.kind in (v.STREET_CENTER, v.BUREAU):
        return j.command_center(district.code) if district else None
    return None


def leaders(j: Any, unit: Any) -> list[Any]:
    """The leader(s) a supervision or escalation about ``unit``'s case reaches."""
    seen: set[str] = set()
    while unit is not None and unit.code not in seen:
        seen.add(unit.code)
        found = j.people_for(unit.code, (v.ROLE_LEADER,))
        if found:
            return list(found)
        unit = _above(j, unit)
    return []


def people(j: Any, holder: str | None, who: Sequence[str]) -> list[Any]:
    """The people of the holder's unit that ``who`` names (its leader possibly above it); none
    for an unknown unit."""
    unit = j.unit(holder) if holder else None
    if unit is None:
        return []
    found: list[Any] = []
    for w in who:
        if w == v.ROLE_LEADER:
            found.extend(leaders(j, unit))
        else:
            found.extend(j.people_for(unit.code, roles_for(unit.kind, (w,))))
    return found


def _notices(found: list[Any], reason: str, text: str) -> list[Notice]:
    return [Notice(person, reason, text) for person in found]


def dispatched(
    j: Any, case_id: str, holder: str, reason: str, category_name_zh: str | None
) -> list[Notice]:
    what = category_name_zh or UNCLASSIFIED_ZH
    if reason == v.REASON_NEW:
        text = f"{_HEAD}新案件 {case_id}（{what}）已派至贵单位，请及时签收处置。"
    else:
        text = f"{_HEAD}案件 {case_id}（{what}）因{v.zh(reason)}派至贵单位，请及时签收处置。"
    return _notices(people(j, holder, WHO_FOR_DISPATCH.get(reason, (DUTY,))), v.DISPATCHED, text)


def colour_changed(
    j: Any, case_id: str, holder: str | None, colour: str | None, action: str
) -> list[Notice]:
    who = WHO_FOR_ACTION.get(action, ())
    if not who or colour is None:
        return []
    text = f"{_HEAD}案件 {case_id} 处置时限预警：{v.zh(colour)}（{v.zh(action)}），请尽快办理。"
    return _notices(people(j, holder, who), action, text)


def awaiting_order(j: Any, case_id: str, holder: str, cause: str) -> list[Notice]:
    text = f"{_HEAD}案件 {case_id} 经{v.zh(cause)}仍由指挥中心持有，请研判并下达指令。"
    return _notices(people(j, holder, WHO_AWAITING_ORDER), v.AWAITING_ORDER, text)


def supervised(j: Any, case_id: str, holder: str | None, reason: str | None) -> list[Notice]:
    """The command center's 督办 order: the holder's duty person and its leader are reminded."""
    why = f"：{reason}" if reason else ""
    text = f"{_HEAD}指挥中心督办案件 {case_id}{why}。请尽快办理并反馈。"
    return _notices(people(j, holder, WHO_SUPERVISED), v.ORDER_SUPERVISE, text)


def assisting(
    j: Any,
    case_id: str,
    units: Iterable[str],
    lead: str | None,
    holder: str,
    category_name_zh: str | None,
) -> list[Notice]:
    """Each unit given the case to assist (协办): its duty person, the role per its kind of unit
    as for a dispatch. The holder is told by ``dispatched`` and is not told twice."""
    what = category_name_zh or UNCLASSIFIED_ZH
    department = j.department(lead) if lead else None
    holder_unit = j.unit(holder)
    who_leads = department.name_zh if department else (holder_unit.name if holder_unit else holder)
    text = (
        f"{_HEAD}案件 {case_id}（{what}）由{who_leads}主办，请贵单位协办，处置情况可在案件中备注。"
    )
    found: list[Any] = []
    for code in dict.fromkeys(units):
        if code != holder:
            found.extend(people(j, code, WHO_ASSISTS))
    return _notices(found, REASON_ASSISTING, text)


def command_center_of(j: Any, unit_code: str) -> Any | None:
    """The command center of the district ``unit_code`` lies in (a command center is its own)."""
    unit = j.unit(unit_code)
    if unit is None:
        return None
    if unit.kind == v.COMMAND_CENTER:
        return unit
    district = j.ancestor(unit.area_code, v.DISTRICT)
    return j.command_center(district.code) if district else None


def undeliverable(j: Any, case_id: str, unit_code: str, role: str, attempts: int) -> list[Notice]:
    """The command center's duty people: a unit the case was given to cannot be reached. The
    adapter's own words for why (often English, a status code) stay in the case's timeline."""
    unit = j.unit(unit_code)
    name = unit.name if unit else unit_code
    text = (
        f"{_HEAD}案件 {case_id} 无法送达{name}（{v.zh(role)}），已尝试{attempts}次，"
        "请查看案件流转记录，联系该单位或改派。"
    )
    center = command_center_of(j, unit_code)
    if center is None:
        return []
    found = j.people_for(center.code, WHO_HEARS_OF_UNDELIVERABLE)
    return _notices(list(found), REASON_UNDELIVERABLE, text)


REASON_HOTSPOT = "hotspot"
WHO_HEARS_OF_HOTSPOT: tuple[str, ...] = (v.ROLE_COMMAND_DUTY,)


def hotspot(
    j: Any, area_code: str, category_name_zh: str | None, count: int, window_minutes: int
) -> list[Notice]:
    """The duty people of the command center of the area's district: many reports of one kind
    in one grid or community within a short time (热点)."""
    area = j.area(area_code)
    district = j.ancestor(area_code, v.DISTRICT) if area else None
    center = j.command_center(district.code) if district else None
    if center is None:
        return []
    what = category_name_zh or UNCLASSIFIED_ZH
    text = (
        f"{_HEAD}热点预警：{area.name if area else area_code}{window_minutes}分钟内已有"
        f"{count}件{what}，请研判是否需要统一处置。"
    )
    return _notices(list(j.people_for(center.code, WHO_HEARS_OF_HOTSPOT)), REASON_HOTSPOT, text)


# The most notices a case's list shows (its latest): a case that was escalated and reminded
# again and again stays one bounded answer.
MAX_LISTED = 200


def listed_notice(
    j: Any,
    *,
    at: str,
    reason: str,
    person_id: str,
    role: str,
    channel: str,
    address: str,
    status: str = v.NOTICE_RECORDED,
) -> dict:
    """One recorded notification as a case's reader sees it: when, what about (``kind``: the
    reason it was sent), to whom (the person's name, role and unit from the jurisdiction ``j``;
    the contact masked, never whole), by which channel and what became of it. A person no
    longer in the city's data is named by id only."""
    person = j.person(person_id) if j is not None else None
    place = person.unit_or_area if person is not None else None
    unit = j.unit(place) if place else None
    area = j.area(place) if place and unit is None else None
    return {
        "at": at,
        "kind": reason,
        "recipient": {
            "person_id": person_id,
            "name": person.name if person is not None else None,
            "role": role,
            "unit": place,
            "unit_name": unit.name if unit is not None else (area.name if area else None),
            "contact": privacy.mask_contact(address) or None,
        },
        "channel": channel,
        "status": status,
    }
