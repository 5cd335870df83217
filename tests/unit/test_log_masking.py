"""Phone and resident-ID numbers never reach the logs in clear; other numbers are left alone."""

from __future__ import annotations

import json

import pytest
import structlog

from gridflow_common.logging import mask_personal_numbers, mask_processor

PHONE = "13900000001"
PHONE_MASKED = "139****0001"
ID_NUMBER = "110101199003071234"
ID_MASKED = "110101********1234"


# ----------------------------------------------------------------------------- mobile numbers


def test_mobile_number_keeps_prefix_and_last_four_digits():
    assert mask_personal_numbers(PHONE) == PHONE_MASKED


@pytest.mark.parametrize("prefix", ["13", "14", "15", "16", "17", "18", "19"])
def test_every_mainland_mobile_prefix_is_masked(prefix):
    number = prefix + "812345678"
    assert mask_personal_numbers(number) == f"{number[:3]}****{number[-4:]}"


def test_mobile_number_inside_chinese_text_is_masked_in_place():
    text = f"居民来电{PHONE}反映楼上漏水"
    assert mask_personal_numbers(text) == f"居民来电{PHONE_MASKED}反映楼上漏水"


def test_mobile_number_after_a_spaced_country_code_is_masked():
    assert mask_personal_numbers(f"+86 {PHONE}") == f"+86 {PHONE_MASKED}"


def test_several_numbers_in_one_text_are_all_masked():
    text = f"tel:{PHONE}, alt:13812345678; id:{ID_NUMBER}"
    assert mask_personal_numbers(text) == (f"tel:{PHONE_MASKED}, alt:138****5678; id:{ID_MASKED}")


@pytest.mark.parametrize("written", ["+8613900000001", "139 0000 0001", "139-0000-0001"])
def test_mobile_number_in_other_accepted_spellings_is_masked(written):
    masked = mask_personal_numbers(f"reporter phone {written}")
    assert "0000" not in masked


# ----------------------------------------------------------------------------- ID numbers


def test_resident_id_number_keeps_region_and_last_four():
    assert mask_personal_numbers(ID_NUMBER) == ID_MASKED


def test_resident_id_number_with_x_check_digit_is_masked():
    assert mask_personal_numbers("33030219851231002x") == "330302********002x"
    assert mask_personal_numbers("33030219851231002X") == "330302********002X"


def test_resident_id_number_inside_text_is_masked_and_not_read_as_a_phone():
    # The ID contains an 11-digit run starting with 1[3-9]; it must be masked as an ID.
    text = "身份证号330302138000000012，请核实"
    assert mask_personal_numbers(text) == "身份证号330302********0012，请核实"


# ----------------------------------------------------------------------------- left alone


@pytest.mark.parametrize(
    "text",
    [
        "2026",
        "2026-03-02 09:00",
        "GF20260302A1B2C3D4E5",
        "assignment GF20260302A1B2C3D4E5-3",
        "grid 330302104001001",  # a 15-digit grid code
        "12345678901",  # 11 digits, but no mobile prefix
        "12300000001",
        "139000000012",  # 12 digits: not a mobile number
        "1390000000",  # 10 digits
        "110101199003071",  # 15 digits
        "1101011990030712345",  # 19 digits
        "10086 / 12345 / 110",
    ],
)
def test_other_digit_runs_are_left_untouched(text):
    assert mask_personal_numbers(text) == text


def test_case_ids_made_by_intake_are_never_masked():
    import datetime as dt

    from gridflow_intake.handlers import _new_case_id

    now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
    for _ in range(2000):
        case_id = _new_case_id(now)
        assert mask_personal_numbers(f"case {case_id} routed") == f"case {case_id} routed"


# ----------------------------------------------------------------------------- the processor


def test_processor_masks_a_reporter_and_contact_keys_whatever_their_fields():
    event = {
        "event": "reporter_seen",
        "reporter": {"name": "庄思思", "phone": PHONE, "email": "zss@example.org", "x": "秘"},
        "reporters": [{"name": "李四海", "wechat_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}],
        "email": "zss@example.org",
        "wechat_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "error": "IntegrityError [parameters: {'reporter': {'name': '庄思思', 'email': 'zss@q.cn'}}]",
        "adapter": {"name": "amqp"},  # "name" alone is not a contact: loggers, adapters...
    }
    masked = mask_processor(None, "info", event)
    assert masked["reporter"] == {
        "name": "庄**",
        "phone": PHONE_MASKED,
        "email": "z***@example.org",
        "x": "***",
    }
    assert masked["reporters"] == [{"name": "李**", "phone": None, "wechat_openid": "o***"}]
    assert (masked["email"], masked["wechat_openid"]) == ("z***@example.org", "o***")
    assert "庄思思" not in masked["error"] and "zss@q.cn" not in masked["error"]
    assert "'name': '庄**'" in masked["error"]
    assert masked["adapter"] == {"name": "amqp"}


def test_processor_masks_strings_nested_in_dicts_lists_and_tuples():
    event = {
        "event": f"report from {PHONE}",
        "details": {"name": "张三", "phone": PHONE, "ids": [ID_NUMBER, {"alt": "13812345678"}]},
        "pair": (PHONE, 3),
        "case_id": "GF20260302A1B2C3D4E5",
        "count": 13900000001,
        "flag": True,
        "nothing": None,
    }
    masked = mask_processor(None, "info", event)
    assert masked == {
        "event": f"report from {PHONE_MASKED}",
        "details": {
            "name": "张三",
            "phone": PHONE_MASKED,
            "ids": [ID_MASKED, {"alt": "138****5678"}],
        },
        "pair": (PHONE_MASKED, 3),
        "case_id": "GF20260302A1B2C3D4E5",
        "count": 13900000001,
        "flag": True,
        "nothing": None,
    }
    assert isinstance(masked["pair"], tuple)


def test_processor_does_not_change_the_callers_data():
    reporter = {"phone": PHONE}
    mask_processor(None, "info", {"reporter": reporter})
    assert reporter == {"phone": PHONE}


def test_rendered_log_line_carries_no_clear_numbers():
    logger = structlog.wrap_logger(
        structlog.testing.ReturnLogger(),
        processors=[mask_processor, structlog.processors.JSONRenderer(ensure_ascii=False)],
    )
    line = logger.info("report_received", reporter={"phone": PHONE}, note=f"ID {ID_NUMBER}")
    data = json.loads(line)
    assert PHONE not in line and ID_NUMBER not in line
    assert data["reporter"]["phone"] == PHONE_MASKED
    assert data["note"] == f"ID {ID_MASKED}"


# ----------------------------------------------------------------------------- standard logging


def test_a_failed_statement_logged_the_way_nameko_logs_it_carries_no_clear_number(tmp_path, capfd):
    """nameko's own error log (``nameko.containers``: 'error handling worker') goes through the
    standard library under the service's ``LOGGING`` dictConfig, not through structlog."""
    import logging
    import logging.config

    import sqlalchemy as sa
    import yaml
    from nameko.cli.main import setup_yaml_parser

    from gridflow_common.logging import configure
    from tests.conftest import REPO

    # What `nameko run --config services/notify/config.yaml` does before starting the service.
    setup_yaml_parser()
    with open(REPO / "services/notify/config.yaml") as f:
        config = yaml.safe_load(f)
    logging.config.dictConfig(config["LOGGING"])
    configure()

    engine = sa.create_engine(f"sqlite:///{tmp_path}/leak.sqlite")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE reporters (phone TEXT PRIMARY KEY)")
    phone = "13866000095"
    try:
        with engine.begin() as conn:
            for _ in range(2):
                conn.execute(
                    sa.text("INSERT INTO reporters (phone) VALUES (:phone)"), {"phone": phone}
                )
    except sa.exc.IntegrityError as exc:
        logging.getLogger("nameko.containers").exception(
            "error handling worker %s: %s", "<WorkerContext notify.on_case_dispatched>", exc
        )
    engine.dispose()
    err = capfd.readouterr().err
    assert "IntegrityError" in err and "[parameters:" in err
    assert phone not in err
    assert "138****0095" in err
    # The same line as every other of the service's log: one JSON object, parsed the same way.
    lines = [json.loads(line) for line in err.splitlines() if "error handling worker" in line]
    assert len(lines) == 1
    assert (lines[0]["level"], lines[0]["logger"]) == ("error", "nameko.containers")
    assert "138****0095" in lines[0]["exception"] and phone not in lines[0]["exception"]


def test_a_standard_library_line_is_json_with_structlogs_keys_and_masked():
    import logging

    from gridflow_common.logging import JsonFormatter

    record = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1, "call %s from %s", ("13866000095", "x"), None
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["event"] == "call 138****0095 from x"
    assert (entry["level"], entry["logger"]) == ("info", "werkzeug")
    assert entry["timestamp"].endswith("Z")
