"""The city's data for the HTTP adapters (an adapters.csv row) is checked at import: the
endpoint's scheme and host, the credential the webhook needs, and each adapter's options,
each problem named with its column (registry.config_problems over the installed adapters)."""

from __future__ import annotations

from gridflow_common.adapters import registry
from gridflow_common.adapters.contract import AdapterConfig


def test_the_citys_data_is_checked_for_a_webhook_row():
    def problems(**changes):
        row = dict(
            code="fire",
            adapter="webhook",
            endpoint="https://fire.example.org/gridflow",
            credential_ref="env:FIRE_WEBHOOK",
            options={},
        )
        row.update(changes)
        return registry.config_problems(AdapterConfig(**row))

    assert problems() == []
    assert [c for c, _ in problems(endpoint="ftp://fire.example.org/x")] == ["endpoint"]
    assert [c for c, _ in problems(endpoint="https://u:pw@fire.example.org/")] == ["endpoint"]
    assert [c for c, _ in problems(endpoint=None)] == ["endpoint"]
    assert [c for c, _ in problems(credential_ref=None)] == ["credential_ref"]
    bad = problems(options={"read_timeout": -1, "change_endpoint": "not a url", "extra": 1})
    assert {m.split(":")[0] for c, m in bad if c == "options"} == {
        "read_timeout",
        "change_endpoint",
        "extra",
    }


def test_the_citys_data_is_checked_for_an_open311_row():
    def problems(**changes):
        row = dict(
            code="roads",
            adapter="open311",
            endpoint="https://311.example.org/v2",
            credential_ref=None,
            options={"service_code": "001"},
        )
        row.update(changes)
        return registry.config_problems(AdapterConfig(**row))

    assert problems() == []  # the api key is optional
    assert [c for c, _ in problems(endpoint="mailto:roads@example.org")] == ["endpoint"]
    assert [c for c, m in problems(options={})] == ["options"]
    assert "service_code" in problems(options={})[0][1]
    assert [c for c, _ in problems(options={"service_code": "1", "poll_batch": 0})] == ["options"]
