"""Who is notified of what, and what they read: pure functions over the Lucheng jurisdiction."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import gridflow_common
from gridflow_common.domain import recipients
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.jurisdiction_files import load_folder

LUCHENG = Path(gridflow_common.__file__).parent / "fixtures" / "lucheng"
STATION = "urban_management-330302001"
BUREAU = "urban_management-330302"
COMMAND = "command-330302"
STREET_CENTER = "center-330302001"
OFFICE = "office-330302001001"
CASE = "C20260302-0001"


@pytest.fixture(scope="module")
def lucheng():
    return load_folder(LUCHENG)


def _roles(notices) -> list[tuple[str, str]]:
    return [(n.person.role, n.person.unit_or_area) for n in notices]


@pytest.mark.parametrize(
    ("holder", "duty"),
    [
        (STATION, v.ROLE_STATION_DUTY),
        (BUREAU, v.ROLE_BUREAU_DUTY),
        (COMMAND, v.ROLE_COMMAND_DUTY),
        (STREET_CENTER, v.ROLE_STREET_DUTY),
        (OFFICE, v.ROLE_COMMUNITY_STAFF),
    ],
)
def test_a_dispatch_reaches_the_duty_person_of_the_holders_kind_of_unit(lucheng, holder, duty):
    notices = recipients.dispatched(lucheng, CASE, holder, v.REASON_NEW, "垃圾堆放")
    assert _roles(notices) == [(duty, holder)]
    assert notices[0].reason == "dispatched"
    assert "垃圾堆放" in notices[0].text


def test_a_reminder_reaches_the_duty_person_only(lucheng):
    notices = recipients.colour_changed(lucheng, CASE, STATION, v.YELLOW, v.ACTION_REMIND)
    assert _roles(notices) == [(v.ROLE_STATION_DUTY, STATION)]


def test_supervision_reaches_the_duty_person_and_the_leader_above_a_station(lucheng):
    notices = recipients.colour_changed(lucheng, CASE, STATION, v.ORANGE, v.ACTION_SUPERVISE)
    # A station has no leader of its own in Lucheng: its department's bureau leads it.
    assert _roles(notices) == [(v.ROLE_STATION_DUTY, STATION), (v.ROLE_LEADER, BUREAU)]


def test_escalation_reaches_the_leader_only(lucheng):
    for holder, leader_at in (
        (BUREAU, BUREAU),
        (COMMAND, COMMAND),
        (STATION, BUREAU),
        (STREET_CENTER, STREET_CENTER),
        (OFFICE, STREET_CENTER),
    ):
        notices = recipients.colour_changed(lucheng, CASE, holder, v.RED, v.ACTION_ESCALATE)
        assert _roles(notices) == [(v.ROLE_LEADER, leader_at)], holder


def test_green_and_unknown_holders_notify_nobody(lucheng):
    assert recipients.colour_changed(lucheng, CASE, STATION, v.GREEN, v.ACTION_NONE) == []
    assert recipients.colour_changed(lucheng, CASE, None, v.RED, v.ACTION_ESCALATE) == []
    assert recipients.dispatched(lucheng, CASE, "nosuch-unit", v.REASON_NEW, None) == []


def test_a_case_waiting_for_an_order_reaches_the_command_centers_duty_person(lucheng):
    notices = recipients.awaiting_order(lucheng, CASE, COMMAND, v.RETURNED)
    assert _roles(notices) == [(v.ROLE_COMMAND_DUTY, COMMAND)]
    assert notices[0].reason == v.AWAITING_ORDER


ENGLISH = sorted(
    {value for name, value in vars(v).items() if name.isupper() and isinstance(value, str)}
)


def _english_in(text: str) -> list[str]:
    return [t for t in ENGLISH if re.search(rf"(?<![A-Za-z_]){re.escape(t)}(?![A-Za-z_])", text)]


def test_every_text_names_vocabulary_terms_in_chinese(lucheng):
    texts = []
    for reason in v.ROUTING_REASONS:
        texts += [n.text for n in recipients.dispatched(lucheng, CASE, STATION, reason, None)]
    for colour in v.COLOURS:
        for action in v.WARNING_ACTIONS:
            texts += [
                n.text for n in recipients.colour_changed(lucheng, CASE, STATION, colour, action)
            ]
    for cause in (v.RETURNED, v.BEYOND_AUTHORITY):
        texts += [n.text for n in recipients.awaiting_order(lucheng, CASE, COMMAND, cause)]
    assert len(texts) > 20
    assert "【网格化管理】案件 C20260302-0001 处置时限预警：黄色（提醒），请尽快办理。" in texts
    assert {t: _english_in(t) for t in texts if _english_in(t)} == {}


def test_every_vocabulary_term_a_person_reads_has_a_chinese_name():
    read = (
        *v.CASE_STATUSES,
        *v.UPDATE_STATUSES,
        *v.ROUTING_REASONS,
        *v.TIERS,
        *v.COLOURS,
        *v.WARNING_ACTIONS,
        *v.CHANNELS,
        *v.UNIT_KINDS,
        v.AWAITING_ORDER,
    )
    assert [term for term in read if v.zh(term) == term and term != "open311"] == []
