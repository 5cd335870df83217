"""Requests the API tests send in several tiers: a valid report, a city bigger than Lucheng,
and one raw HTTP call whose bytes, headers and answer the test controls."""

from __future__ import annotations

import http.client
import json
import uuid

from tests.conftest import lucheng_files

REPORTS = "/api/v1/reports"
JSON = {"Content-Type": "application/json"}


def report(**changes) -> dict:
    """A medical-waste report in Tengqiao (grid 330302104001001) with an external id of its own."""
    body = {
        "channel": "grid_app",
        "external_id": f"t-{uuid.uuid4().hex[:12]}",
        "description": "一户民房内存放大量医疗废弃物",
        "category": "event.medical_waste",
        "location": {"lat": 28.05, "lon": 120.635},
    }
    body.update(changes)
    return body


def lucheng_with_more_people(extra: int) -> dict[str, str]:
    """Lucheng's files with ``extra`` more grid workers (600 make the 79 KB upload of defect 17)."""
    files = lucheng_files()
    people = files["people.csv"].rstrip("\n").splitlines()
    grids = [line.split(",")[3] for line in people[1:] if line.split(",")[2] == "grid_worker"]
    for i in range(extra):
        pid = f"P{20000 + i:05d}"
        people.append(
            f"{pid},网格员{i:03d},grid_worker,{grids[i % len(grids)]},139{i:08d},"
            f"{pid.lower()}@lucheng.example.org"
        )
    files["people.csv"] = "\n".join(people) + "\n"
    return files


def raw_call(
    host: str, port: int, method: str, path: str, body: bytes | None = None, headers=None
) -> tuple[int, dict[str, str], dict]:
    """One request on a connection of its own; the answer must be JSON."""
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        payload = response.read()
        assert response.getheader("Content-Type", "").startswith("application/json"), payload
        return response.status, dict(response.getheaders()), json.loads(payload)
    finally:
        conn.close()


def nested(depth: int) -> bytes:
    """A report body whose field ``x`` is ``depth`` lists deep."""
    return b'{"channel": "grid_app", "x": ' + b"[" * depth + b"]" * depth + b"}"


def report_with_long_lat(digits: int) -> bytes:
    """A report whose lat is an integer of ``digits`` digits (Python's limit is 4,300)."""
    body = json.dumps(report(location={"lat": 0, "lon": 120.6}))
    return body.replace('"lat": 0', '"lat": ' + "9" * digits).encode()
