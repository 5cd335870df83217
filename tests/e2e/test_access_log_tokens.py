"""nginx's access log of the real topology masks the tokens request lines carry (a reporter's
progress link in the path, a sign-in link in the query, a link in a Referer), as the services'
own logs do. deploy/nginx.conf is rendered as deploy/topology.sh renders it and run on its own:
its upstream need not answer, the request line is logged either way."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest

from gridflow_intake import progress as pg
from tests.conftest import REPO, free_port


@pytest.fixture
def nginx(tmp_path):
    port = free_port()
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / f"nginx-{folder}").mkdir()
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path),
        "INTAKE_UPSTREAM": f"127.0.0.1:{free_port()}",  # nobody listens: nginx answers 502
        "GRIDFLOW_PORT": str(port),
    }
    with open(REPO / "deploy/nginx.conf") as template:
        rendered = subprocess.run(
            ["envsubst", "${VAR_DIR} ${INTAKE_UPSTREAM} ${GRIDFLOW_PORT}"],
            stdin=template,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    conf = tmp_path / "nginx.conf"
    conf.write_text(rendered)
    subprocess.run(["nginx", "-c", str(conf)], check=True, capture_output=True)
    try:
        yield f"http://127.0.0.1:{port}", tmp_path / "nginx-access.log"
    finally:
        subprocess.run(["nginx", "-c", str(conf), "-s", "quit"], capture_output=True)


def test_the_access_log_keeps_a_tokens_prefix_and_masks_the_rest(nginx):
    base, log = nginx
    progress, _ = pg.new_progress_token()
    signin = "gfl_" + progress[4:][::-1]
    other = "gfr_" + progress[4:].upper()
    with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
        client.get(f"{pg.PROGRESS_PATH}/{progress}")
        client.post(f"{pg.PROGRESS_PATH}/{progress}/evaluation", json={"satisfaction": 5})
        client.get(
            f"/api/v1/session/link?token={signin}",
            headers={"Referer": f"https://gridflow.example/api/v1/progress/{other}"},
        )
        client.get("/api/v1/cases/GF-20260105-ABCDEFGHJK")
    deadline = time.monotonic() + 5
    while log.read_text().count("\n") < 4:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)  # bounded wait for nginx to write its lines
    logged = log.read_text()
    for token in (progress, signin, other):
        assert token[4:] not in logged
    lines = logged.splitlines()
    assert '"GET /api/v1/progress/gfr_*** HTTP/1.1"' in lines[0]
    assert '"POST /api/v1/progress/gfr_***/evaluation HTTP/1.1"' in lines[1]
    assert '"GET /api/v1/session/link?token=gfl_*** HTTP/1.1"' in lines[2]
    assert '"https://gridflow.example/api/v1/progress/gfr_***"' in lines[2]
    # Other request lines are logged as they were.
    assert '"GET /api/v1/cases/GF-20260105-ABCDEFGHJK HTTP/1.1"' in lines[3]
