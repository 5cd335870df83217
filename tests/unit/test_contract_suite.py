"""The integrator's contract suite (gridflow_common.adapters.contract_suite), run as an adapter
package runs it: a separate pytest process with ``-p gridflow_common.adapters.contract_suite
--adapter=...``. It passes the example filedrop adapter, catches each adapter that breaks the
contract in one way, and the loader refuses, loudly, a class that is no adapter and a name that
is not installed."""

from __future__ import annotations

import pytest
from gridflow_filedrop.adapter import FiledropAdapter

from gridflow_common.adapters import registry
from gridflow_common.adapters.contract_suite import find_harness, load_adapter
from tests.support.contract_suite_runs import run_suite
from tests.unit import contract_suite_subjects as subjects

SUBJECTS = "tests.unit.contract_suite_subjects"
FILEDROP_HARNESS = "gridflow_filedrop.testing:contract_harness"
# Every test of the suite; a new one must be added here (and so be seen to pass on filedrop).
SUITE_TESTS = {
    "test_class_keeps_the_contract",
    "test_config_schema_refuses_an_option_it_does_not_know",
    "test_push_delivers_the_case_to_the_system",
    "test_push_change_delivers_the_change",
    "test_pushes_arrive_in_the_order_they_were_made",
    "test_a_repeated_push_carries_the_same_idempotency_key",
    "test_take_status_reads_the_departments_own_word",
    "test_take_status_refuses_a_malformed_body_with_a_value_error",
    "test_polling_reports_a_change_once",
    "test_a_refusal_is_push_refused",
    "test_an_outage_is_push_failed_within_the_timeout_then_delivery_resumes",
    "test_health_follows_the_system",
    "test_context_now_is_aware_operational_time",
}


def test_the_suite_passes_the_example_filedrop_adapter_by_its_installed_name(tmp_path):
    code, outcomes, output = run_suite(tmp_path, "--adapter=filedrop")
    assert code == 0, output
    assert outcomes == dict.fromkeys(SUITE_TESTS, "passed"), output
    assert "harness gridflow_filedrop.testing:contract_harness" in output


def test_the_suite_takes_a_class_path_and_an_explicit_harness(tmp_path):
    code, outcomes, output = run_suite(
        tmp_path,
        "--adapter=gridflow_filedrop.adapter:FiledropAdapter",
        f"--harness={FILEDROP_HARNESS}",
        "-k",
        "push_delivers",
    )
    assert code == 0, output
    assert outcomes == {"test_push_delivers_the_case_to_the_system": "passed"}


OUTAGE = "test_an_outage_is_push_failed_within_the_timeout_then_delivery_resumes"


@pytest.mark.parametrize(
    ("subject", "harness", "caught_by", "says"),
    [
        (
            "FreshKeyEachPush",
            FILEDROP_HARNESS,
            "test_a_repeated_push_carries_the_same_idempotency_key",
            "both pushes must reach the system",
        ),
        (
            "SwallowsOutages",
            FILEDROP_HARNESS,
            OUTAGE,
            "a push to a system that is down gave PushResult",
        ),
        ("RetriesRefusals", FILEDROP_HARNESS, "test_a_refusal_is_push_refused", "PushFailed"),
        (
            "GuessesWords",
            FILEDROP_HARNESS,
            "test_take_status_reads_the_departments_own_word",
            "assert 'accepted' == '已受理-派工'",
        ),
        (
            "ReportsEveryPoll",
            FILEDROP_HARNESS,
            "test_polling_reports_a_change_once",
            "an unchanged status reported again",
        ),
        (
            "AlwaysHealthy",
            FILEDROP_HARNESS,
            "test_health_follows_the_system",
            "a system that is down reported",
        ),
        (
            "LeaksItsSecret",
            f"{SUBJECTS}:harness_with_a_secret",
            OUTAGE,
            "the adapter's secret appears in an error or a log line",
        ),
    ],
)
def test_the_suite_catches_an_adapter_that_breaks_the_contract(
    tmp_path, subject, harness, caught_by, says
):
    code, outcomes, output = run_suite(
        tmp_path, f"--adapter={SUBJECTS}:{subject}", f"--harness={harness}"
    )
    assert code == 1, output
    assert outcomes[caught_by] == "failure", output
    # Caught by the one test that pins that promise, and it says so.
    failed = {name for name, outcome in outcomes.items() if outcome != "passed"}
    assert failed == {caught_by}, output
    assert says in output, output


# --------------------------------------------------------------------------- the loader refuses


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (
            f"{SUBJECTS}:NotAnAdapter",
            "does not subclass gridflow_common.adapters.DepartmentAdapter",
        ),
        (f"{SUBJECTS}:WithoutHealth", "does not implement health"),
        (f"{SUBJECTS}:ConfigSchemaNotASchema", "config_schema must be a marshmallow Schema class"),
        (f"{SUBJECTS}:ConfigSchemaInstance", "config_schema must be a marshmallow Schema class"),
        (f"{SUBJECTS}:not_a_class", "does not subclass"),
        (f"{SUBJECTS}:NoSuchClass", f"{SUBJECTS} has no NoSuchClass"),
        ("gridflow_no_such_package.adapter:Adapter", "cannot be imported"),
        ("no-such-adapter", "no adapter 'no-such-adapter' is installed"),
        ("module_without_class:", "is not module:name"),
    ],
)
def test_the_loader_refuses_what_is_not_an_adapter_naming_the_problem(spec, says):
    with pytest.raises(registry.AdapterContractError, match=says.replace(".", r"\.")):
        load_adapter(spec)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (f"{SUBJECTS}:NotAnAdapter", "does not subclass"),
        (f"{SUBJECTS}:WithoutHealth", "does not implement health"),
        ("no-such-adapter", "no adapter 'no-such-adapter' is installed"),
    ],
)
def test_the_suite_stops_at_once_on_a_class_the_loader_refuses(tmp_path, spec, says):
    code, outcomes, output = run_suite(tmp_path, f"--adapter={spec}")
    # pytest's usage error: nothing ran, and the reason is on the terminal.
    assert code == 4, output
    assert outcomes == {}
    assert f"--adapter={spec}" in output and says in output, output


def test_an_installed_entry_point_naming_a_broken_class_is_refused(tmp_path, monkeypatch):
    # A distribution on the path, as pip would leave one, whose entry point names a class that
    # does not implement health(): installed, but refused by name.
    dist = tmp_path / "broken_adapter-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-adapter\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\nbroken-kit = {SUBJECTS}:WithoutHealth\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry.installed()["broken-kit"] == f"{SUBJECTS}:WithoutHealth"
    with pytest.raises(registry.AdapterContractError, match="does not implement health"):
        registry.load("broken-kit")
    with pytest.raises(registry.AdapterContractError, match="does not implement health"):
        load_adapter("broken-kit")


def test_a_missing_harness_is_refused_naming_where_it_was_looked_for():
    with pytest.raises(registry.AdapterContractError) as caught:
        find_harness(subjects.WithoutHealth, None)
    assert "tests.unit.contract_suite_subjects" in str(caught.value)
    assert "tests.testing" in str(caught.value)
    factory, found = find_harness(FiledropAdapter, None)
    assert found == FILEDROP_HARNESS and callable(factory)
