"""Residents' personal data: the masked forms of a reporter's name and phone number, who may see
them whole, and the contract that refuses to carry them in clear between services."""

from __future__ import annotations

import pytest

from gridflow_common import contracts as c
from gridflow_common.domain.jurisdiction_files import parse_jurisdiction
from gridflow_common.domain.privacy import (
    mask_free_text,
    mask_name,
    mask_personal_numbers,
    mask_phone,
    mask_reporter,
    may_see_reporter,
    unmasked_reporter_fields,
)
from tests.unit.test_jurisdiction import small_city

# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("庄思思", "庄**"),
        ("张三", "张**"),  # the length is not shown: 张三 and 张三丰 look alike
        ("欧阳娜娜", "欧**"),
        ("王", "*"),
        ("John Smith", "J**"),
        ("Ólafur", "Ó**"),
        ("  庄思思  ", "庄**"),
        ("\u0000庄思思", "庄**"),  # a NUL in front does not take the place of the first character
        ("吴\u0000辉", "吴**"),
        ("\t\n王", "*"),
    ],
)
def test_a_name_keeps_its_first_character_and_nothing_else(name, masked):
    assert mask_name(name) == masked


@pytest.mark.parametrize("name", ["", " ", "\u3000", "\u0000", "\u0000\u0001 \t"])
def test_a_name_with_nothing_in_it_masks_to_nothing(name):
    assert mask_name(name) == ""


def test_a_very_long_name_masks_to_three_characters():
    assert mask_name("庄" + "思" * 100_000) == "庄**"


# ----------------------------------------------------------------------------- phone numbers


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13866000001", "138****0001"),
        ("+8613866000001", "138****0001"),
        ("+86 138 6600 0001", "138****0001"),
        ("0086-138-6600-0001", "138****0001"),
        ("8613866000001", "138****0001"),
        ("138-6600-0001", "138****0001"),
        (" 138 6600 0001 ", "138****0001"),
        ("(0577) 8800-1234", "057*****1234"),  # a landline with its area code
        ("88001234", "****1234"),  # a landline without: only the last four
        ("+44 7700 900123", "+447*****0123"),
        ("１３８６６０００００１", "138****0001"),  # full-width digits are digits
        ("1234567", "*******"),  # 4 of 7 would all but give it away
        ("110", "***"),
        ("138\u00006600\u00000001", "138****0001"),
    ],
)
def test_a_phone_number_shows_at_most_its_first_three_and_last_four_digits(phone, masked):
    assert mask_phone(phone) == masked


@pytest.mark.parametrize("phone", ["", "   ", "no phone", "\u0000", "+", "---"])
def test_a_phone_without_digits_masks_to_nothing(phone):
    assert mask_phone(phone) == ""


def test_a_very_long_number_shows_seven_digits_and_no_more():
    masked = mask_phone("1" + "2" * 10_000 + "3456")
    assert masked.startswith("122") and masked.endswith("3456")
    assert sum(ch.isdigit() for ch in masked) == 7


@pytest.mark.parametrize(
    "phone",
    ["13866000001", "+86 138 6600 0001", "0577-88001234", "88001234", "123", "1" * 40],
)
def test_no_masked_phone_gives_away_more_than_seven_digits_of_the_number(phone):
    masked = mask_phone(phone)
    assert sum(ch.isdigit() for ch in masked) <= 7
    assert "6600" not in masked and "8800" not in masked


# ----------------------------------------------------------------------------- reporters


def test_a_reporter_masks_both_fields():
    assert mask_reporter({"name": "庄思思", "phone": "13866000001"}) == {
        "name": "庄**",
        "phone": "138****0001",
    }


def test_no_reporter_stays_none_and_missing_fields_are_null():
    assert mask_reporter(None) is None
    assert mask_reporter({}) == {"name": None, "phone": None}
    assert mask_reporter({"phone": "13866000001"}) == {"name": None, "phone": "138****0001"}
    assert mask_reporter({"name": " ", "phone": ""}) == {"name": None, "phone": None}


def test_a_reporter_field_nobody_foresaw_is_masked_not_copied():
    # A channel that adds a contact field is covered without a change to the masking: a key
    # with no mask of its own is masked opaquely (a first character at most), never copied.
    masked = mask_reporter(
        {
            "name": "庄思思",
            "phone": "13866000001",
            "email": "zhuang.sisi@example.org",
            "wechat_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
            "id_card": "330302198512310021",
            "addr": "y",
        }
    )
    assert masked == {
        "name": "庄**",
        "phone": "138****0001",
        "email": "z***@example.org",
        "wechat_openid": "o***",
        "id_card": "3***",
        "addr": "***",
    }
    assert unmasked_reporter_fields(masked) == []
    assert unmasked_reporter_fields({"email": "a@b.cn", "wechat_openid": "oUpF8u"}) == [
        "email",
        "wechat_openid",
    ]


def test_a_reporter_with_values_of_the_wrong_type_reveals_nothing():
    masked = mask_reporter({"name": ["庄思思"], "phone": 13866000001})
    assert masked == {"name": "[**", "phone": "138****0001"}


def test_a_reporter_is_not_changed_in_place():
    reporter = {"name": "庄思思", "phone": "13866000001"}
    mask_reporter(reporter)
    assert reporter == {"name": "庄思思", "phone": "13866000001"}


# ----------------------------------------------------------------------------- free text


def test_numbers_in_a_description_are_masked_and_the_rest_is_kept():
    text = "电话13866000001，身份证330302198512310021，井盖编号330302104001001"
    assert mask_personal_numbers(text) == (
        "电话138****0001，身份证330302********0021，井盖编号330302104001001"
    )


def test_masking_twice_is_masking_once():
    # Every hop masks what it forwards (for announcements from before intake masked).
    text = "电话 +86 138-6600-0001 / 13900000001"
    once = mask_personal_numbers(text)
    assert mask_personal_numbers(once) == once
    assert "6600" not in once and "0000" not in once


def test_masking_a_long_hostile_text_keeps_its_length_and_takes_no_time():
    text = ("13866000001x" * 20_000) + "\u0000"
    masked = mask_personal_numbers(text)
    assert len(masked) == len(text) and "13866000001" not in masked


def test_free_text_masks_the_reporters_names_it_is_given_and_every_number():
    text = "我是庄思思，张三丰也看到了，张三说电话13866000001"
    assert mask_free_text(text, ["庄思思", "张三", "张三丰", None, ""]) == (
        "我是庄**，张**也看到了，张**说电话138****0001"
    )


def test_free_text_leaves_one_character_names_and_other_names_alone():
    # Replacing every 王 of a text would garble it and hide nobody.
    text = "王大妈反映，王家门口堆满垃圾"
    assert mask_free_text(text, ["王", " "]) == text
    assert mask_free_text("李四来过", ["庄思思"]) == "李四来过"
    assert mask_free_text("庄思思来过", [" 庄思思 "]) == "庄**来过"


# ----------------------------------------------------------------------------- the contract


@pytest.mark.parametrize(
    "reporter",
    [
        {"name": "庄**", "phone": "138****0001"},
        {"name": "*", "phone": "****1234"},
        {"name": None, "phone": "+447*****0123"},
        {"name": "J**", "phone": "***"},
        mask_reporter({"name": "欧阳娜娜", "phone": "+86 138 6600 0001"}),
    ],
)
def test_masked_reporters_are_what_the_contract_carries(reporter):
    assert unmasked_reporter_fields(reporter) == []


@pytest.mark.parametrize(
    ("reporter", "fields"),
    [
        ({"name": "庄思思", "phone": None}, ["name"]),
        ({"name": "庄**", "phone": "13866000001"}, ["phone"]),
        ({"name": "庄**\n", "phone": "138****0001\n"}, ["name", "phone"]),
        ({"name": "庄思**", "phone": "1386****0001"}, ["name", "phone"]),
        ({"name": 1, "phone": ["138****0001"]}, ["name", "phone"]),
    ],
)
def test_a_clear_name_or_number_is_not_masked(reporter, fields):
    assert unmasked_reporter_fields(reporter) == fields


def _registered(reporter) -> dict:
    return {
        "case_id": "GF-20260302-ABCDEFGHJK",
        "category": None,
        "area_code": "330302104001001",
        "description": "x",
        "jurisdiction_version": 1,
        "reporter": reporter,
    }


def test_an_event_refuses_to_carry_a_reporter_in_clear():
    import datetime as dt

    now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
    with pytest.raises(ValueError, match="must be masked"):
        c.make_event(
            c.INTAKE, c.CASE_REGISTERED, now, _registered({"name": "庄思思", "phone": "1"})
        )
    event = c.make_event(
        c.INTAKE, c.CASE_REGISTERED, now, _registered({"name": "庄**", "phone": "138****0001"})
    )
    assert event.payload["reporter"] == {"name": "庄**", "phone": "138****0001"}
    # A consumer meeting a clear reporter (an older or broken producer) refuses the message too.
    message = event.to_message()
    message["payload"]["reporter"] = {"name": "庄思思", "phone": "13866000001"}
    with pytest.raises(c.ValidationError):
        c.load_event(message)


def test_an_event_without_a_reporter_still_reads():
    import datetime as dt

    now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
    payload = _registered(None)
    del payload["reporter"]
    event = c.make_event(c.INTAKE, c.CASE_REGISTERED, now, payload)
    assert c.load_event(event.to_message()).payload["reporter"] is None


# ----------------------------------------------------------------------------- who sees them


@pytest.fixture(scope="module")
def city():
    files = {
        **small_city(),
        "departments.csv": (
            "code,name_zh,name_en,sees_reporter\nroads,道路局,Roads,yes\nparks,公园局,Parks,no\n"
        ),
    }
    return parse_jurisdiction(files)


@pytest.mark.parametrize("role", ["admin", "command_center"])
def test_the_command_center_and_the_administrator_always_see_reporters(city, role):
    assert may_see_reporter(role, "parks", None, city)
    assert may_see_reporter(role, None, None, city)


def test_the_holding_department_sees_them_only_when_the_city_allows_it(city):
    assert may_see_reporter("department", "roads", "roads", city)
    assert not may_see_reporter("department", "parks", "parks", city)


def test_a_department_not_holding_the_case_does_not_see_them(city):
    assert not may_see_reporter("department", "parks", "roads", city)
    assert not may_see_reporter("department", None, "roads", city)
    assert not may_see_reporter("department", "roads", None, city)
    # A department the jurisdiction does not know (removed by a later import) sees nothing.
    assert not may_see_reporter("department", "gone", "gone", city)


@pytest.mark.parametrize(
    "role", ["leader", "street", "community", "grid_worker", "", "ADMIN", "Command_Center"]
)
def test_every_other_role_sees_them_masked_even_in_the_allowed_department(city, role):
    assert not may_see_reporter(role, "roads", "roads", city)
