"""Three-tier routing (三级流转) as pure functions over the Lucheng jurisdiction."""

from __future__ import annotations

from pathlib import Path

import pytest

import gridflow_common
from gridflow_common.domain.jurisdiction_files import FILES, load_folder, parse_jurisdiction
from gridflow_routing.domain import (
    Assignment,
    AwaitsOrder,
    escalate,
    reroute_returned,
    route_new_case,
)

LUCHENG = Path(gridflow_common.__file__).parent / "fixtures" / "lucheng"

DISTRICT = "330302"
TENGQIAO = "330302104"  # 藤桥镇 (the seeds' medical-waste township)
SHUPU = "330302104001"  # 戍浦社区, in Tengqiao
SHUPU_GRID = "330302104001001"
WUMA_GRID = "330302001001001"  # 五马街道 / 青园社区 / grid 1

COMMAND = f"command-{DISTRICT}"


@pytest.fixture(scope="module")
def lucheng():
    return load_folder(LUCHENG)


def _lucheng_texts() -> dict[str, str]:
    return {name: (LUCHENG / name).read_text(encoding="utf-8") for name in FILES}


def _without_lines_mentioning(text: str, code: str) -> str:
    kept = [line for line in text.splitlines(keepends=True) if code not in line.split(",")]
    return "".join(kept)


@pytest.fixture(scope="module")
def tengqiao_without_environment_station():
    """Lucheng, but Tengqiao has no environment station (nor its duty officer)."""
    texts = _lucheng_texts()
    station = f"environment-{TENGQIAO}"
    assert station in texts["units.csv"]
    texts["units.csv"] = _without_lines_mentioning(texts["units.csv"], station)
    texts["people.csv"] = _without_lines_mentioning(texts["people.csv"], station)
    j = parse_jurisdiction(texts)
    assert j.unit(station) is None
    return j


@pytest.fixture(scope="module")
def with_leaderless_category():
    """Lucheng plus a street-tier category that names no lead department."""
    texts = _lucheng_texts()
    texts["categories.csv"] = texts["categories.csv"].rstrip("\n") + (
        "\nevent.unclear_duty,职责不清,Responsibility unclear,event,2,working_days,street,,,职责不清\n"
    )
    j = parse_jurisdiction(texts)
    assert j.category("event.unclear_duty").lead_department is None
    return j


# ----------------------------------------------------------------------------- new cases


def test_community_category_goes_to_the_community_office_without_a_lead(lucheng):
    a = route_new_case(lucheng, lucheng.category("event.neighbour_dispute"), SHUPU_GRID)
    assert (a.tier, a.holder, a.lead, a.assisting, a.at_command) == (
        "community",
        f"office-{SHUPU}",
        None,
        (),
        False,
    )


def test_community_category_uses_the_office_of_the_grid_it_falls_in(lucheng):
    a = route_new_case(lucheng, lucheng.category("event.elderly_alone"), WUMA_GRID)
    assert a.holder == "office-330302001001"


def test_street_category_goes_to_the_lead_departments_station_in_that_street(lucheng):
    a = route_new_case(lucheng, lucheng.category("event.medical_waste"), SHUPU_GRID)
    assert (a.tier, a.holder, a.lead) == ("street", f"environment-{TENGQIAO}", "environment")


def test_street_category_picks_the_station_of_the_street_the_place_is_in(lucheng):
    a = route_new_case(lucheng, lucheng.category("event.medical_waste"), WUMA_GRID)
    assert a.holder == "environment-330302001"


def test_street_category_without_station_goes_to_district_bureau(
    tengqiao_without_environment_station,
):
    j = tengqiao_without_environment_station
    a = route_new_case(j, j.category("event.medical_waste"), SHUPU_GRID)
    assert (a.tier, a.holder, a.lead, a.at_command) == (
        "district",
        f"environment-{DISTRICT}",
        "environment",
        False,
    )
    assert a.assisting == ("health",)


def test_missing_station_in_one_street_does_not_affect_another_street(
    tengqiao_without_environment_station,
):
    j = tengqiao_without_environment_station
    a = route_new_case(j, j.category("event.medical_waste"), WUMA_GRID)
    assert (a.tier, a.holder) == ("street", "environment-330302001")


def test_street_category_of_a_department_with_no_stations_at_all_goes_to_its_bureau(lucheng):
    # Lucheng has a fire bureau but no fire stations in its streets.
    a = route_new_case(lucheng, lucheng.category("event.fire_hazard"), SHUPU_GRID)
    assert (a.tier, a.holder, a.lead) == ("district", f"fire-{DISTRICT}", "fire")
    assert a.assisting == ("emergency",)


def test_district_category_goes_to_the_lead_bureau_with_its_assisting_departments(lucheng):
    a = route_new_case(lucheng, lucheng.category("event.public_health_hazard"), SHUPU_GRID)
    assert (a.tier, a.holder, a.lead, a.at_command) == (
        "district",
        f"health-{DISTRICT}",
        "health",
        False,
    )
    assert a.assisting == ("environment", "police")


def test_uncategorised_case_goes_to_the_command_center_with_no_lead(lucheng):
    a = route_new_case(lucheng, None, SHUPU_GRID)
    assert (a.tier, a.holder, a.lead, a.assisting, a.at_command) == (
        "district",
        COMMAND,
        None,
        (),
        True,
    )


def test_category_without_a_lead_department_goes_to_the_command_center(with_leaderless_category):
    j = with_leaderless_category
    a = route_new_case(j, j.category("event.unclear_duty"), SHUPU_GRID)
    assert (a.holder, a.lead, a.at_command) == (COMMAND, None, True)


def test_every_decision_carries_an_explanation(lucheng):
    for code in ("event.neighbour_dispute", "event.medical_waste", "event.public_health_hazard"):
        assert route_new_case(lucheng, lucheng.category(code), SHUPU_GRID).explanation
    assert route_new_case(lucheng, None, SHUPU_GRID).explanation


def test_every_explanation_a_clerk_reads_is_chinese_with_no_code_or_english_word(lucheng):
    """Defect 15: the timeline shows routing's explanation to the command center's clerks."""
    import re

    english = re.compile(r"[A-Za-z]{2,}")
    decisions = []
    for grid in (a.code for a in lucheng.areas_at("grid")):
        for category in [*lucheng.categories, None]:
            first = route_new_case(lucheng, category, grid)
            decisions.append(first)
            if isinstance(first, Assignment):
                decisions.append(escalate(lucheng, first, category, grid))
                decisions.append(reroute_returned(lucheng, first, None, grid, 1))
                decisions.append(reroute_returned(lucheng, first, category, grid, 2))
    assert len(decisions) > 100
    for decision in decisions:
        assert decision.explanation
        assert not english.search(decision.explanation), decision.explanation


# ----------------------------------------------------------------------------- going up


def test_escalation_climbs_community_street_district_then_command_center(lucheng):
    category = lucheng.category("event.neighbour_dispute")  # led by justice, stations everywhere
    a = route_new_case(lucheng, category, SHUPU_GRID)
    holders = [a.holder]
    for _ in range(3):
        a = escalate(lucheng, a, category, SHUPU_GRID)
        holders.append(a.holder)
    assert holders == [f"office-{SHUPU}", f"justice-{TENGQIAO}", f"justice-{DISTRICT}", COMMAND]
    assert (a.lead, a.at_command) == (None, True)


def test_beyond_authority_at_the_command_center_waits_for_its_order(lucheng):
    category = lucheng.category("event.public_health_hazard")
    at_command = escalate(
        lucheng, route_new_case(lucheng, category, SHUPU_GRID), category, SHUPU_GRID
    )
    assert at_command.holder == COMMAND
    again = escalate(lucheng, at_command, category, SHUPU_GRID)
    # Not a new assignment at the same place: nothing moved, so nothing is counted.
    assert again == AwaitsOrder(COMMAND, again.explanation)
    assert "等待指挥中心指令" in again.explanation


def test_a_case_returned_at_the_command_center_waits_there_instead_of_bouncing(lucheng):
    start = route_new_case(lucheng, lucheng.category("event.medical_waste"), SHUPU_GRID)
    first = reroute_returned(lucheng, start, None, SHUPU_GRID, 1)
    assert isinstance(first, Assignment) and first.at_command
    for returns_so_far, named in ((2, None), (3, lucheng.category("event.junk_pile"))):
        again = reroute_returned(lucheng, first, named, SHUPU_GRID, returns_so_far)
        assert isinstance(again, AwaitsOrder)
        assert again.holder == COMMAND


def test_escalating_a_community_case_whose_lead_has_no_station_goes_to_the_bureau(lucheng):
    category = lucheng.category("event.elderly_alone")  # civil affairs: no stations in Lucheng
    a = escalate(lucheng, route_new_case(lucheng, category, SHUPU_GRID), category, SHUPU_GRID)
    assert (a.tier, a.holder, a.lead) == ("district", f"civil_affairs-{DISTRICT}", "civil_affairs")


def test_reclassified_category_with_a_higher_tier_jumps_straight_to_that_tier(lucheng):
    start = route_new_case(lucheng, lucheng.category("event.neighbour_dispute"), SHUPU_GRID)
    illegal_building = lucheng.category("event.illegal_building")  # district, urban management
    a = escalate(lucheng, start, illegal_building, SHUPU_GRID, reclassified=True)
    assert (a.tier, a.holder, a.lead) == (
        "district",
        f"urban_management-{DISTRICT}",
        "urban_management",
    )
    assert a.assisting == ("housing",)


def test_without_reclassification_a_community_case_only_goes_up_one_tier(lucheng):
    start = route_new_case(lucheng, lucheng.category("event.neighbour_dispute"), SHUPU_GRID)
    a = escalate(lucheng, start, lucheng.category("event.illegal_building"), SHUPU_GRID)
    assert (a.tier, a.holder) == ("street", f"urban_management-{TENGQIAO}")


def test_reclassified_category_with_a_lower_tier_still_goes_one_tier_up(lucheng):
    start = route_new_case(lucheng, lucheng.category("event.medical_waste"), SHUPU_GRID)
    a = escalate(
        lucheng, start, lucheng.category("event.neighbour_dispute"), SHUPU_GRID, reclassified=True
    )
    assert (a.tier, a.holder, a.lead) == ("district", f"justice-{DISTRICT}", "justice")


def test_district_case_escalated_goes_to_the_command_center(lucheng):
    category = lucheng.category("event.illegal_building")
    start = route_new_case(lucheng, category, SHUPU_GRID)
    assert start.holder == f"urban_management-{DISTRICT}"
    a = escalate(lucheng, start, category, SHUPU_GRID)
    assert (a.holder, a.lead, a.assisting, a.at_command) == (COMMAND, None, (), True)


# ----------------------------------------------------------------------------- returns (退回)


def test_return_naming_a_category_reroutes_at_the_same_street_tier(lucheng):
    start = route_new_case(lucheng, lucheng.category("event.medical_waste"), SHUPU_GRID)
    a = reroute_returned(lucheng, start, lucheng.category("event.junk_pile"), SHUPU_GRID, 1)
    assert (a.tier, a.holder, a.lead) == (
        "street",
        f"urban_management-{TENGQIAO}",
        "urban_management",
    )


def test_return_naming_a_category_reroutes_at_the_same_district_tier(lucheng):
    start = route_new_case(lucheng, lucheng.category("event.public_health_hazard"), SHUPU_GRID)
    a = reroute_returned(lucheng, start, lucheng.category("event.illegal_building"), SHUPU_GRID, 1)
    assert (a.tier, a.holder, a.lead, a.assisting) == (
        "district",
        f"urban_management-{DISTRICT}",
        "urban_management",
        ("housing",),
    )


def test_return_naming_a_district_category_at_street_tier_stays_at_street(lucheng):
    # The named category's lead has a station here: the return does not move the case up.
    start = route_new_case(lucheng, lucheng.category("event.medical_waste"), SHUPU_GRID)
    a = reroute_returned(lucheng, start, lucheng.category("event.illegal_building"), SHUPU_GRID, 1)
    assert (a.tier, a.holder) == ("street", f"urban_management-{TENGQIAO}")


def test_return_without_a_category_goes_to_the_command_center(lucheng):
    start = route_new_case(lucheng, lucheng.category("event.medical_waste"), SHUPU_GRID)
    a = reroute_returned(lucheng, start, None, SHUPU_GRID, 1)
    assert (a.tier, a.holder, a.lead, a.at_command) == ("district", COMMAND, None, True)


def test_second_return_goes_to_the_command_center_even_naming_a_category(lucheng):
    start = route_new_case(lucheng, lucheng.category("event.medical_waste"), SHUPU_GRID)
    first = reroute_returned(lucheng, start, lucheng.category("event.junk_pile"), SHUPU_GRID, 1)
    second = reroute_returned(lucheng, first, lucheng.category("event.noise"), SHUPU_GRID, 2)
    assert (second.holder, second.lead, second.at_command) == (COMMAND, None, True)


# ----------------------------------------------------------------------------- assisting (部门联动)


@pytest.mark.parametrize(
    ("category", "tier", "holder", "assisting"),
    [
        ("event.noise", "street", f"environment-{TENGQIAO}", ("police",)),
        ("event.street_vendor", "street", f"urban_management-{TENGQIAO}", ("market",)),
        ("event.gas_leak", "district", f"fire-{DISTRICT}", ("emergency", "housing")),
        ("component.road_damage", "district", f"housing-{DISTRICT}", ()),
    ],
)
def test_assisting_departments_are_carried_at_street_and_district_tiers(
    lucheng, category, tier, holder, assisting
):
    a = route_new_case(lucheng, lucheng.category(category), SHUPU_GRID)
    assert (a.tier, a.holder, a.assisting) == (tier, holder, assisting)


def test_assisting_departments_follow_the_case_when_it_goes_up(lucheng):
    category = lucheng.category("event.noise")
    a = escalate(lucheng, route_new_case(lucheng, category, SHUPU_GRID), category, SHUPU_GRID)
    assert (a.tier, a.holder, a.lead, a.assisting) == (
        "district",
        f"environment-{DISTRICT}",
        "environment",
        ("police",),
    )


def test_community_office_has_no_assisting_departments(lucheng):
    a = route_new_case(lucheng, lucheng.category("event.low_income_assistance"), SHUPU_GRID)
    assert isinstance(a, Assignment)
    assert (a.tier, a.lead, a.assisting) == ("community", None, ())
