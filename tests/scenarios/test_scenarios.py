"""The shared scenarios, replayed by `gridflow replay` against the embedded default.

Each file is one test. All five pass today; a scenario added later that does not yet pass is
listed in EXPECTED_TO_FAIL (strict xfail), so it turns into a failure the day it starts passing
and someone moves it to the plain list.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import GRIDFLOW, SHARED

SCENARIOS = sorted((SHARED / "scenarios").glob("*.yaml"))
EXPECTED_TO_FAIL: dict[str, str] = {}


def test_the_shared_scenarios_are_there():
    assert len(SCENARIOS) >= 5, f"no scenarios found under {SHARED / 'scenarios'}"


@pytest.mark.scenario
@pytest.mark.parametrize(
    "scenario",
    [pytest.param(p, id=p.stem, marks=[pytest.mark.xfail(strict=True, reason=EXPECTED_TO_FAIL[p.stem])]
                  if p.stem in EXPECTED_TO_FAIL else []) for p in SCENARIOS],
)
def test_scenario_replays_cleanly(embedded_url, scenario):
    result = subprocess.run(
        [str(GRIDFLOW), "replay", str(scenario), "--url", embedded_url],
        capture_output=True, text=True, timeout=300,
    )
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout + result.stderr
    assert last.endswith(" 0 failed"), last
