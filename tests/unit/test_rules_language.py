"""The rule language (domain.rules, read by rules_file): what each rule says, how rules take
precedence, and each kind of bad input refused with its line."""

from __future__ import annotations

import dataclasses
from datetime import time

import pytest

from gridflow_app.folders import jurisdiction_files
from gridflow_common.domain.calendar import TimeLimit, TimeUnit
from gridflow_common.domain.jurisdiction_files import JurisdictionError, parse_jurisdiction
from gridflow_common.domain.rules import TAXONOMY, Facts, TimeWindow
from gridflow_common.rules_file import parse_rules
from gridflow_routing import domain

QINGYUAN_GRID = "330302001001001"  # 五马街道 青园社区 第1网格
TENGQIAO_GRID = "330302104001001"  # 藤桥镇 戍浦社区 第1网格


@pytest.fixture(scope="module")
def lucheng():
    return parse_jurisdiction(jurisdiction_files())


def rules(j, text: str):
    rule_set, problems = parse_rules(text, j)
    assert problems == [], [str(p) for p in problems]
    return rule_set


def problems(j, text: str) -> list[str]:
    return [str(p) for p in parse_rules(text, j)[1]]


def with_rules(j, text: str):
    return dataclasses.replace(j, rules=rules(j, text))


def facts(category="event.noise", area=QINGYUAN_GRID, channel="hotline", at=time(10, 0), text=""):
    return Facts(category, area, channel, at, text)


# --------------------------------------------------------------------------- what rules say


def test_a_street_rule_sends_its_markets_to_a_named_unit_and_other_streets_keep_the_taxonomy(
    lucheng,
):
    j = with_rules(
        lucheng,
        """
rules:
  - id: R1
    name: 五马街道占道经营交市场监管所
    when: {category: event.street_vendor, area: "330302001"}
    then: {route_to_unit: market-330302001}
""",
    )
    vendor = j.category("event.street_vendor")
    here = domain.route_by_rules(j, vendor, facts("event.street_vendor"))
    assert (here.holder, here.lead, here.rule_id) == ("market-330302001", "market", "R1")
    assert here.explanation.startswith(
        "按规则R1（五马街道占道经营交市场监管所）：派至五马市场监管所"
    )
    # 'market' leads now, so it is no longer listed as assisting.
    assert "market" not in here.assisting
    there = domain.route_by_rules(j, vendor, facts("event.street_vendor", TENGQIAO_GRID))
    assert (there.holder, there.rule_id) == ("urban_management-330302104", TAXONOMY)


@pytest.mark.parametrize(
    ("clock", "holder", "rule_id"),
    [
        (time(22, 0), "police-330302001", "N1"),  # the window starts, included
        (time(23, 59), "police-330302001", "N1"),
        (time(0, 0), "police-330302001", "N1"),  # past midnight
        (time(5, 59), "police-330302001", "N1"),
        (time(6, 0), "environment-330302001", TAXONOMY),  # the window ends, excluded
        (time(21, 59), "environment-330302001", TAXONOMY),
    ],
)
def test_a_night_window_crosses_midnight(lucheng, clock, holder, rule_id):
    j = with_rules(
        lucheng,
        """
rules:
  - id: N1
    when: {category: event.noise, time: "22:00-06:00"}
    then: {route_to_department: police}
""",
    )
    decided = domain.route_by_rules(j, j.category("event.noise"), facts(at=clock))
    assert (decided.holder, decided.rule_id) == (holder, rule_id)


def test_words_in_the_text_make_a_category_major_and_start_it_a_tier_higher(lucheng):
    j = with_rules(
        lucheng,
        """
rules:
  - id: M1
    name: 大量医疗废弃物属重大
    when: {category: event.medical_waste, text_any: [大量, 成吨]}
    then: {up_one_tier: true}
""",
    )
    waste = j.category("event.medical_waste")  # street tier, environment
    major = domain.route_by_rules(
        j, waste, facts("event.medical_waste", text="民房内存放大量医疗废弃物")
    )
    assert (major.tier, major.holder, major.rule_id) == ("district", "environment-330302", "M1")
    minor = domain.route_by_rules(j, waste, facts("event.medical_waste", text="路边有几个输液袋"))
    assert (minor.tier, minor.holder) == ("street", "environment-330302001")


def test_a_category_time_limit_differs_in_one_area_only(lucheng):
    j = with_rules(
        lucheng,
        """
rules:
  - id: T1
    when: {category: component.streetlight, area: "330302104"}
    then: {time_limit: {amount: 5, unit: working_days}}
""",
    )
    light = j.category("component.streetlight")
    far = domain.route_by_rules(j, light, facts("component.streetlight", TENGQIAO_GRID))
    assert (far.time_limit, far.limit_rule_id) == (TimeLimit(5, TimeUnit.WORKING_DAYS), "T1")
    assert far.rule_id == TAXONOMY  # the holder is still the taxonomy's
    near = domain.route_by_rules(j, light, facts("component.streetlight"))
    assert near.time_limit is None and near.limit_rule_id is None


def test_channel_condition_and_area_at_any_level_match_descendants(lucheng):
    rule_set = rules(
        lucheng,
        """
rules:
  - id: C1
    when: {channel: [sensor], area: "330302"}
    then: {start_tier: district}
""",
    )
    assert rule_set.decide(facts(channel="sensor")).route.id == "C1"
    assert rule_set.decide(facts(channel="hotline")).route is None


def test_an_unclassified_case_goes_to_the_command_center_whatever_the_rules(lucheng):
    j = with_rules(
        lucheng, "rules:\n  - id: A1\n    when: {}\n    then: {route_to_department: police}\n"
    )
    decided = domain.route_by_rules(j, None, facts(None))
    assert decided.holder == "command-330302" and decided.rule_id == TAXONOMY


# --------------------------------------------------------------------------- precedence


PRECEDENCE = """
rules:
  - id: LOW
    when: {category: event.noise}
    then: {route_to_department: police}
  - id: HIGH
    priority: 10
    when: {category: event.noise, area: "330302001"}
    then: {route_to_unit: justice-330302001}
  - id: FIRST
    priority: 5
    when: {category: event.noise, channel: hotline}
    then: {start_tier: district}
  - id: SECOND
    priority: 5
    when: {category: event.noise, text_any: 吵}
    then: {start_tier: community}
  - id: LIMIT
    when: {category: event.noise}
    then: {time_limit: 3 hours}
"""


def test_the_highest_priority_wins_then_the_first_written(lucheng):
    rule_set = rules(lucheng, PRECEDENCE)
    assert rule_set.decide(facts(text="吵")).route.id == "HIGH"
    elsewhere = facts(area=TENGQIAO_GRID, text="吵")
    assert rule_set.decide(elsewhere).route.id == "FIRST"  # 5 = 5: written first
    assert rule_set.decide(dataclasses.replace(elsewhere, channel="web")).route.id == "SECOND"
    assert rule_set.decide(facts(area=TENGQIAO_GRID, channel="web")).route.id == "LOW"


def test_routing_and_time_limit_are_judged_separately(lucheng):
    fired = rules(lucheng, PRECEDENCE).decide(facts(text="吵"))
    assert (fired.route.id, fired.limit.id) == ("HIGH", "LIMIT")


def test_a_window_without_a_report_time_does_not_match():
    assert TimeWindow(time(8), time(9)).contains(time(8, 30))
    assert not TimeWindow(time(8), time(9)).contains(time(9))


def test_no_rules_file_means_the_taxonomy(lucheng):
    assert not lucheng.rules
    decided = domain.route_by_rules(lucheng, lucheng.category("event.noise"), facts())
    assert decided == domain.route_new_case(lucheng, lucheng.category("event.noise"), QINGYUAN_GRID)


# --------------------------------------------------------------------------- bad input


def one_rule(when: str, then: str = "{route_to_department: police}") -> str:
    return f"rules:\n  - id: B1\n    when: {when}\n    then: {then}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            one_rule("{category: event.nosie}"),
            "rules.yaml line 3: rule B1: unknown category 'event.nosie'",
        ),
        (
            one_rule("{}", "{route_to_unit: police-999}"),
            "rules.yaml line 4: rule B1: unknown unit 'police-999'",
        ),
        (
            one_rule("{}", "{route_to_department: polis}"),
            "rules.yaml line 4: rule B1: unknown department 'polis'",
        ),
        (
            one_rule('{area: "330399"}'),
            "rules.yaml line 3: rule B1: unknown area '330399': not in this jurisdiction, the "
            "rule could never match",
        ),
        (
            one_rule('{time: "22:00-22:00"}'),
            "rules.yaml line 3: rule B1: time window '22:00-22:00' is empty (starts where it "
            "ends): the rule could never match",
        ),
        (
            one_rule("{text_any: []}"),
            "rules.yaml line 3: rule B1: 'text_any' is an empty list: the rule could never match",
        ),
        (
            one_rule("{channel: fax}"),
            "rules.yaml line 3: rule B1: unknown channel 'fax'; expected one of grid_app, "
            "hotline, wechat, web, sensor, open311, import",
        ),
        (
            one_rule('{time: "25:00-06:00"}'),
            "rules.yaml line 3: rule B1: time '25:00-06:00' is not a clock time",
        ),
        (
            one_rule("{}", "{start_tier: province}"),
            "rules.yaml line 4: rule B1: unknown tier 'province'; expected one of community, "
            "street, district",
        ),
        (
            one_rule("{}", "{time_limit: 2 fortnights}"),
            "rules.yaml line 4: rule B1: time_limit unit 'fortnights' is not one of minutes, "
            "hours, working_hours, working_days",
        ),
        (
            one_rule("{wehn: 1}"),
            "rules.yaml line 3: rule B1: unknown condition 'wehn'; expected one of category, "
            "area, channel, time, text_any",
        ),
        (
            "rules:\n  - id: B1\n    when: {}\n",
            "rules.yaml line 2: rule B1: 'then' is missing",
        ),
        (
            "rules:\n  - id: B1\n    when: {category: [event.noise\n",
            "rules.yaml line 4: not valid YAML: expected ',' or ']', but got '<stream end>'",
        ),
    ],
)
def test_each_bad_input_is_refused_with_its_line(lucheng, text, expected):
    assert problems(lucheng, text) == [expected]


def test_a_category_and_area_with_no_such_place_is_refused(lucheng):
    # Lucheng's health department has a district bureau only; a jurisdiction without it has
    # no unit of health anywhere, so a rule sending 五马's cases there could never be obeyed.
    units = tuple(u for u in lucheng.units if u.department_code != "health")
    j = dataclasses.replace(lucheng, units=units)
    text = one_rule(
        '{category: event.food_safety, area: "330302001"}', "{route_to_department: health}"
    )
    assert problems(j, text) == [
        "rules.yaml line 4: rule B1: department 'health' has no unit in 五马街道 (330302001): "
        "no station in the street and no bureau in the district, so the rule could never be "
        "carried out there"
    ]


def test_two_rules_that_contradict_each_other_are_refused_naming_both(lucheng):
    text = """
rules:
  - id: R1
    when: {category: [event.noise, event.illegal_parking], time: "22:00-06:00"}
    then: {route_to_department: police}
  - id: R2
    when: {time: "22:00-06:00", category: [event.illegal_parking, event.noise]}
    then: {route_to_department: urban_management}
  - id: R3
    priority: 1
    when: {category: [event.noise, event.illegal_parking], time: "22:00-06:00"}
    then: {route_to_department: urban_management}
"""
    assert problems(lucheng, text) == [
        "rules.yaml line 6: rule R2: contradicts rule R1 (line 3): same conditions and "
        "priority, different routing; give one a higher priority or different conditions"
    ]


def test_a_rule_repeating_another_could_never_fire(lucheng):
    text = one_rule("{category: event.noise}") + one_rule("{category: event.noise}").replace(
        "rules:\n", ""
    ).replace("B1", "B2")
    assert problems(lucheng, text) == [
        "rules.yaml line 5: rule B2: repeats rule B1 (line 2): same conditions, priority and "
        "routing, so it could never fire"
    ]


def test_duplicate_ids_and_keys_and_aliases_are_refused(lucheng):
    text = one_rule("{}") + one_rule("{channel: web}").replace("rules:\n", "")
    assert problems(lucheng, text) == [
        "rules.yaml line 5: rule B1: duplicate id 'B1' (first on line 2)"
    ]
    twice = "rules:\n  - id: B1\n    id: B2\n    when: {}\n    then: {start_tier: street}\n"
    assert problems(lucheng, twice) == [
        "rules.yaml line 3: key 'id' is given twice (first on line 2)"
    ]
    alias = "base: &b {start_tier: street}\nrules:\n  - id: B1\n    when: {}\n    then: *b\n"
    assert problems(lucheng, alias)[0].startswith("rules.yaml line 1: anchors and aliases")


def test_the_jurisdiction_refuses_a_bad_rules_file_as_a_whole(lucheng):
    files = {**jurisdiction_files(), "rules.yaml": one_rule("{category: event.nosie}")}
    with pytest.raises(JurisdictionError) as refused:
        parse_jurisdiction(files)
    assert refused.value.as_dicts() == [
        {
            "file": "rules.yaml",
            "line": 3,
            "column": "rule B1",
            "message": "unknown category 'event.nosie'",
        }
    ]


def test_not_utf8_rules_file_is_refused(lucheng):
    files = {**jurisdiction_files(), "rules.yaml": "规则".encode("gbk")}
    with pytest.raises(JurisdictionError) as refused:
        parse_jurisdiction(files)
    assert refused.value.problems[0].file == "rules.yaml"
    assert "not UTF-8" in refused.value.problems[0].message


def test_an_empty_rules_file_has_no_rules(lucheng):
    assert not rules(lucheng, "")
    assert not rules(lucheng, "rules: []\n")
