"""A department's own words taken as Gridflow's statuses with the city's table: the unit's row,
else its department's; Gridflow's own words as themselves; anything else unknown, never guessed."""

from __future__ import annotations

import pytest

from gridflow_app.bootstrap import LUCHENG
from gridflow_common.domain import status_words as sw
from gridflow_common.domain import vocabulary as v
from gridflow_common.domain.jurisdiction import AdapterConfig
from gridflow_common.domain.jurisdiction_files import load_folder
from tests.support.status_back import with_adapters

STATION = "police-330302104"
OTHER_STATION = "police-330302001"

POLICE = AdapterConfig(
    "police", "amqp", status_map={"已签收": v.ACCEPTED, "办结": v.RESOLVED, "ACK": v.ACCEPTED}
)
# The station's own row wins over its department's, word for word: its table is its own.
POLICE_STATION = AdapterConfig(STATION, "webhook", status_map={"出警": v.IN_PROGRESS})


@pytest.fixture(scope="module")
def city():
    return with_adapters(load_folder(LUCHENG), [POLICE, POLICE_STATION])


def test_a_word_in_the_departments_map_is_its_status(city):
    taken = sw.take_department_word(city, "police", "办结")
    assert (taken.status, taken.recognised, taken.source) == (
        v.RESOLVED,
        True,
        "status_map of police",
    )


def test_a_station_without_a_row_of_its_own_uses_its_departments(city):
    assert sw.take_department_word(city, OTHER_STATION, "已签收").status == v.ACCEPTED


def test_a_station_with_its_own_row_uses_its_own_table_only(city):
    assert sw.take_department_word(city, STATION, "出警").status == v.IN_PROGRESS
    # Its department's word is not its word: unknown, not borrowed.
    assert sw.take_department_word(city, STATION, "办结").status is None


@pytest.mark.parametrize("word", [v.ACCEPTED, v.IN_PROGRESS, v.RESOLVED, v.RETURNED])
def test_gridflows_own_status_is_itself_with_or_without_a_map(city, word):
    assert sw.take_department_word(city, "police", word).status == word
    assert sw.take_department_word(city, "fire", word).status == word


@pytest.mark.parametrize("word", ["done", "Resolved", "已处理", "ack", "closed", ""])
def test_any_other_word_is_unknown_never_guessed(city, word):
    taken = sw.take_department_word(city, "police", word)
    assert (taken.status, taken.recognised, taken.source) == (None, False, None)
    assert taken.word == word


def test_a_map_entry_pointing_outside_the_vocabulary_is_not_followed():
    taken = sw.take_word("完成", {"完成": "closed"}, "fire")
    assert taken.status is None


def test_a_jurisdiction_without_adapters_maps_nothing_but_gridflows_words():
    plain = load_folder(LUCHENG)
    assert sw.adapter_config(plain, "police") is None
    assert sw.take_department_word(plain, "police", "已签收").status is None
    assert sw.take_department_word(plain, "police", v.RESOLVED).status == v.RESOLVED


def test_the_adapter_row_of_a_unit_is_its_own_else_its_departments(city):
    assert sw.adapter_config(city, STATION) is POLICE_STATION
    assert sw.adapter_config(city, OTHER_STATION) is POLICE
    # A unit nobody wrote a row for is served by the default adapter, which maps no words.
    assert sw.adapter_config(city, "fire-330302") == AdapterConfig("fire-330302", "amqp")
    assert sw.adapter_config(city, "fire") is None
