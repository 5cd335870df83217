"""Shared test plumbing: where the shared fixtures are, and a running embedded Gridflow."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GRIDFLOW_SHARED", REPO.parent / "shared"))
GRIDFLOW = Path(sys.executable).parent / "gridflow"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered at {url} within {timeout} s")


@pytest.fixture(scope="session")
def embedded_url(tmp_path_factory):
    """`gridflow run` (the embedded default) on the simulated clock, as `make run` starts it."""
    port = free_port()
    log = tmp_path_factory.mktemp("embedded") / "gridflow.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(GRIDFLOW), "run", "--port", str(port), "--clock", "simulated"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", proc=proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
