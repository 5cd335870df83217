"""The adapters Gridflow ships that push to a department's own system keep the contract: the
integrator's contract suite, run on each with its harness (the real RabbitMQ behind a switch, a
real HTTP server, a GeoReport v2 server, an SMTP server, each on loopback), exactly as an adapter
package runs it."""

from __future__ import annotations

import pytest

from tests.support.contract_suite_runs import run_suite
from tests.unit.test_contract_suite import SUITE_TESTS


@pytest.mark.parametrize(
    ("adapter", "harness"),
    [
        ("amqp", "tests.support.amqp_harness:contract_harness"),
        ("webhook", "tests.support.harnesses:webhook_harness"),
        ("open311", "tests.support.harnesses:open311_harness"),
        ("email", "tests.support.email_harness:contract_harness"),
    ],
)
def test_the_contract_suite_passes_a_shipped_adapter(tmp_path, adapter, harness):
    code, outcomes, output = run_suite(tmp_path, f"--adapter={adapter}", f"--harness={harness}")
    assert code == 0, output
    expected = dict.fromkeys(SUITE_TESTS, "passed")
    if adapter == "amqp":
        # A broker never refuses a message for good: its harness says so and the check skips.
        expected["test_a_refusal_is_push_refused"] = "skipped"
    assert outcomes == expected, output
