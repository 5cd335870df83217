"""`gridflow run` as a person starts it, for the tests that drive Gridflow over real HTTP, with
cookies and all. It writes its admin token to a file of the test's own, never to the checkout's
`.gridflow/admin-token`."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

from gridflow_app.folders import ADMIN_TOKEN_ENV, ADMIN_TOKEN_FILE_ENV
from gridflow_common.db import make_engine
from tests.conftest import GRIDFLOW, free_port, wait_http

# Settings of the environment the tests run in that would change what the server does.
_NOT_INHERITED = (ADMIN_TOKEN_ENV, "GRIDFLOW_PUBLIC_URL", "GRIDFLOW_TRUSTED_PROXIES")


@dataclass
class RunningGridflow:
    url: str
    database_url: str
    token_file: Path
    log: Path

    @property
    def admin_token(self) -> str:
        return self.token_file.read_text(encoding="utf-8").strip()

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def engine(self) -> sa.Engine:
        """The server's own database, to look at or age what the API cannot."""
        return make_engine(self.database_url)

    def create_user(self, username: str, role: str = "command_center", **fields) -> dict:
        answer = httpx.post(
            f"{self.url}/api/v1/admin/users",
            json={"username": username, "role": role, **fields},
            headers=self.admin,
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        return answer.json()


@contextlib.contextmanager
def running_gridflow(folder: Path, database_url: str | None = None) -> Iterator[RunningGridflow]:
    """`gridflow run` on the simulated clock, on ``database_url`` (default a SQLite file in
    ``folder``), stopped afterwards."""
    port = free_port()
    database_url = database_url or f"sqlite:///{folder}/gridflow.sqlite"
    token_file = folder / "admin-token"
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env[ADMIN_TOKEN_FILE_ENV] = str(token_file)
    log = folder / "gridflow.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                str(GRIDFLOW),
                "run",
                "--port",
                str(port),
                "--clock",
                "simulated",
                "--database-url",
                database_url,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz", proc=proc)
        yield RunningGridflow(url, database_url, token_file, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
