"""Reading /metrics as Prometheus does: the exposition parsed, the names it exposes, and
Debian's promtool run on it (``promtool check metrics``, ``promtool check config``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_CONFIG = REPO / "deploy/prometheus/prometheus.yml"
ALERT_RULES = REPO / "deploy/prometheus/alerts.yml"
DASHBOARD = REPO / "deploy/grafana/gridflow.json"
METRIC_NAME = re.compile(r"\bgridflow_[a-z0-9_]+")


def promtool() -> str:
    """Debian's promtool (package prometheus, installed by .ci/run): in CI its absence fails
    the test; on a developer's machine without it the test is skipped, saying how to get it."""
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
    pytest.skip("promtool is not installed here (apt-get install prometheus provides it)")


def check_metrics(text: str, where: str) -> None:
    """``promtool check metrics``: exit 0 and no complaint (it prints one line per problem)."""
    result = subprocess.run(
        [promtool(), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        f"promtool check metrics on {where}: rc={result.returncode}\n"
        f"{result.stdout}\n{result.stderr}"
    )


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called ``name`` (a sample's own name: ``x_total``, ``x_bucket``)."""
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def exposed_names(text: str) -> set[str]:
    """Every name a query may use on this exposition: the families, their samples, and what a
    histogram or counter family has before its first observation."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def names_in(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))
