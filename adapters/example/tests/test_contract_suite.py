"""filedrop keeps the department adapter contract: Gridflow's contract suite, run exactly as the
README tells an integrator to run it, in a pytest process of its own."""

from __future__ import annotations

import subprocess
import sys


def test_the_contract_suite_passes(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "gridflow_common.adapters.contract_suite",
            "--adapter=gridflow_filedrop.adapter:FiledropAdapter",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout and "skipped" not in done.stdout
