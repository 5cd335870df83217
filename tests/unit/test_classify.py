import os
from pathlib import Path

import pytest

from gridflow_common.domain.calendar import TimeLimit, TimeUnit
from gridflow_common.domain.classify import classify
from gridflow_common.domain.jurisdiction import Category
from gridflow_common.domain.jurisdiction_files import load_folder


def _lucheng_folder() -> Path:
    override = os.environ.get("GRIDFLOW_FIXTURES")
    if override:
        given = Path(override)
        return given / "lucheng" if (given / "lucheng").is_dir() else given
    return Path(__file__).resolve().parents[3] / "shared/fixtures/lucheng"


@pytest.fixture(scope="module")
def categories():
    return load_folder(_lucheng_folder()).categories


def category(code: str, *keywords: str) -> Category:
    return Category(
        code=code,
        name_zh=code,
        name_en=code,
        kind="event",
        limit=TimeLimit(1, TimeUnit.WORKING_DAYS),
        default_tier="street",
        lead_department=None,
        assisting_departments=(),
        keywords=keywords,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("青园社区门口的路灯不亮已经三天了，晚上很黑，老人出门不安全", "component.streetlight"),
        (
            "戍浦社区一处住房内堆放大量医疗废弃物，有针头和输液袋，气味很大",
            "event.medical_waste",
        ),
        ("红苹果小区大门口堆放了大量废品杂物，堵住了大门", "event.junk_pile"),
        ("楼上漏水到我家，和他们沟通无效，怎么办？", "event.neighbour_dispute"),
        ("金雅苑小区垃圾桶满溢，暴露垃圾无人清理", "event.exposed_rubbish"),
    ],
)
def test_resident_reports_are_classified_by_lucheng_keywords(categories, text, expected):
    assert classify(text, categories) == expected


def test_text_matching_no_keyword_is_unclassified(categories):
    assert classify("请问办理居住证需要什么材料？", categories) is None
    assert classify("", categories) is None
    assert classify("路灯不亮", []) is None


def test_more_matched_keywords_beat_a_longer_single_match():
    cats = [category("long", "非常长的一个关键词"), category("many", "垃圾", "满溢")]
    assert classify("这里有非常长的一个关键词，垃圾满溢", cats) == "many"


def test_equal_counts_are_decided_by_total_matched_length():
    cats = [category("short", "吵"), category("long", "噪音扰民")]
    assert classify("晚上噪音扰民，很吵", [cats[0], category("x")]) == "short"
    # One keyword each: 噪音扰民 is the longer, more specific match.
    assert classify("晚上噪音扰民，很吵", cats) == "long"


def test_full_ties_go_to_the_category_listed_first():
    first, second = category("first", "漏水"), category("second", "漏水")
    assert classify("厨房漏水", [first, second]) == "first"
    assert classify("厨房漏水", [second, first]) == "second"


def test_a_keyword_repeated_in_text_or_list_counts_once():
    cats = [category("repeat", "垃圾", "垃圾"), category("pair", "垃圾", "堆放")]
    assert classify("垃圾垃圾垃圾堆放", cats) == "pair"


def test_full_width_and_case_variants_still_match():
    cats = [category("wifi", "wifi故障")]
    assert classify("小区ＷＩＦＩ故障", cats) == "wifi"


def test_classification_is_repeatable(categories):
    text = "楼道堆物，还有人飞线充电，消防隐患很大"
    answers = {classify(text, categories) for _ in range(20)}
    assert answers == {"event.fire_hazard"}
