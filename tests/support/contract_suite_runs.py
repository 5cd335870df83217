"""Run the department adapter contract suite as an adapter package runs it: a pytest process of
its own, started in an empty folder (no conftest or ini of this repository), with
``-p gridflow_common.adapters.contract_suite``; its outcome read from a JUnit report."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_suite(folder: Path, *options: str, timeout: float = 300) -> tuple[int, dict[str, str], str]:
    """(exit code, test name -> passed/failure/error/skipped, output) of one run."""
    report = folder / "report.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "gridflow_common.adapters.contract_suite",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *options,
        ],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    outcomes: dict[str, str] = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            outcomes[case.get("name", "")] = kinds[0] if kinds else "passed"
    return done.returncode, outcomes, done.stdout + done.stderr
