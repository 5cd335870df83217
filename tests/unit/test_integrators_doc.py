"""docs/integrators.md's examples are run, not just read: the example message is a valid
DepartmentMessageV2, the status examples are valid StatusMessageV1, the curl + openssl signature
is the one Gridflow computes, and the Python check an integrator copies accepts Gridflow's
signature and refuses a tampered body or a stale one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gridflow_common import contracts as c
from gridflow_common import signing

DOC = (Path(__file__).resolve().parents[2] / "docs" / "integrators.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC, flags=re.S)


def blocks(language: str, containing: str) -> list[str]:
    found = [code for lang, code in BLOCKS if lang == language and containing in code]
    assert found, f"no ```{language} block containing {containing!r} in docs/integrators.md"
    return found


def test_the_example_department_message_is_a_valid_v2_message():
    [example] = blocks("json", '"message_version": 2')
    message = c.DepartmentMessageV2().load(json.loads(example))
    assert message["status_back"]["exchange"] == c.STATUS_EXCHANGE
    assert message["status_back"]["reply_queue"] == c.reply_queue(message["unit"])
    assert message["status_back"]["routing_key"] == message["unit"]


def test_the_documented_department_message_fields_are_the_contracts_fields():
    table = DOC.split("## 3. The message")[1].split("```json")[0]
    documented = set()
    for cell in re.findall(r"^\| ([^|]+) \|", table, flags=re.M):
        documented |= set(re.findall(r"`(\w+)`", cell))
    assert documented == set(c.DepartmentMessageV2().fields)


def test_the_documented_status_fields_are_the_contracts_fields():
    table = DOC.split("### StatusMessageV1")[1].split("Properties:")[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.M))
    assert documented == set(c.StatusMessageV1().fields)


def test_the_status_examples_are_valid_status_messages():
    bodies = re.findall(r"json\.dumps\((\{.*?\})", DOC, flags=re.S)
    status_bodies = [b for b in bodies if '"case_id"' in b]
    assert len(status_bodies) >= 3
    for text in status_bodies:
        c.StatusMessageV1().load(json.loads(text))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_curl_and_openssl_signature_is_gridflows():
    [script] = blocks("sh", "openssl dgst")
    line = next(x for x in script.splitlines() if x.startswith("SIG="))
    secret, body, timestamp = "s3cr3t-秘", '{"case_id":"GF-1","status":"办结"}', 1772413200
    done = subprocess.run(
        ["bash", "-c", f'{line}\nprintf %s "$SIG"'],
        env={"SECRET": secret, "BODY": body, "TS": str(timestamp), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert "sha256=" + done.stdout == signing.sign(secret, timestamp, body.encode("utf-8"))


def test_the_python_check_for_webhook_receivers_matches_gridflows_signing():
    [code] = blocks("python", "def is_from_gridflow")
    namespace: dict = {}
    exec(code, namespace)
    is_from_gridflow = namespace["is_from_gridflow"]
    secret = "webhook-secret"
    body = json.dumps({"case_id": "GF-1", "描述": "井盖"}, ensure_ascii=False).encode("utf-8")
    now = int(time.time())
    headers = {
        "X-Gridflow-Timestamp": str(now),
        "X-Gridflow-Signature": signing.sign(secret, now, body),
    }
    assert is_from_gridflow(secret.encode(), headers, body)
    assert not is_from_gridflow(secret.encode(), headers, body + b" ")
    assert not is_from_gridflow(b"another-secret", headers, body)
    stale = now - signing.TOLERANCE_SECONDS - 5
    old = {
        "X-Gridflow-Timestamp": str(stale),
        "X-Gridflow-Signature": signing.sign(secret, stale, body),
    }
    assert not is_from_gridflow(secret.encode(), old, body)
    assert not is_from_gridflow(secret.encode(), {}, body)
