"""A small Open311 GeoReport v2 server on loopback (JSON format), as a department's system that
speaks the standard: ``GET services.json``, ``POST requests.json`` (form-encoded), ``GET
requests.json?service_request_id=a,b``, ``GET requests/{id}.json``, and the token flow
(``POST`` answers a token; ``GET tokens/{token}.json`` gives the id once the server has made
the request). A test changes its records (``close`` a request with notes), switches the token
flow on, and takes it down and up like the webhook double (``department_http.HttpDouble``:
same process model, same control port, same scripted faults).

Its answers keep to the shared JSON Schemas (/work/shared/open311-georeport-v2); errors are
GeoReport's ``[{"code": ..., "description": ...}]``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from tests.support.department_http import Answer, HttpDouble, Request, json_answer

SERVICES = [
    {
        "service_code": "001",
        "service_name": "Road damage",
        "description": "Potholes and broken pavement",
        "metadata": False,
        "type": "realtime",
        "keywords": "road,pothole",
        "group": "streets",
    },
    {
        "service_code": "002",
        "service_name": "Gas leak",
        "description": None,
        "metadata": False,
        "type": "realtime",
        "keywords": None,
        "group": "safety",
    },
]


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _error(status: int, description: str) -> Answer:
    return json_answer(status, [{"code": status, "description": description}])


class GeoReportApp:
    """The server's state: services, requests, tokens. Options: ``api_key`` (required on POST
    when set), ``jurisdiction_id`` (required on every call when set)."""

    def __init__(self, options: Mapping[str, Any], secret: str):
        self.api_key = options.get("api_key") or secret or None
        self.jurisdiction_id = options.get("jurisdiction_id")
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests: dict[str, dict[str, Any]] = {}
            self.posted: dict[str, dict[str, list[str]]] = {}
            # token -> the id it stands for, once told (None until the test resolves it).
            self.tokens: dict[str, str | None] = {}
            self._pending: dict[str, str] = {}
            self.token_flow = False
            self._ids = itertools.count(638344)
            self._tokens = itertools.count(1)

    def inspect(self, request: Request) -> dict[str, Any]:
        if request.method != "POST":
            return {}
        return {"form": parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)}

    def answer(self, request: Request) -> Answer:
        path = request.path
        params = dict(request.query)
        if request.method == "POST":
            params.update(parse_qs(request.body.decode("utf-8", "replace")))
        if self.jurisdiction_id and params.get("jurisdiction_id") != [self.jurisdiction_id]:
            return _error(404, "jurisdiction_id not provided or not served here")
        if request.method == "GET" and path == "/services.json":
            return json_answer(200, SERVICES)
        if request.method == "POST" and path == "/requests.json":
            return self._post(params)
        if request.method == "GET" and path == "/requests.json":
            return self._list(params)
        if request.method == "GET" and path.startswith(("/requests/", "/request/")):
            found = self._find(path.rsplit("/", 1)[-1].removesuffix(".json"))
            return json_answer(200, [found]) if found else _error(404, "no such request")
        if request.method == "GET" and path.startswith("/tokens/"):
            return self._token(path.rsplit("/", 1)[-1].removesuffix(".json"))
        return _error(404, f"{request.method} {path} is not a GeoReport v2 call")

    def _post(self, params: dict[str, list[str]]) -> Answer:
        one = {k: v[0] for k, v in params.items() if v}
        if self.api_key and one.get("api_key") != self.api_key:
            return _error(403, "api_key is missing or not valid")
        code = one.get("service_code")
        service = next((s for s in SERVICES if s["service_code"] == code), None)
        if service is None:
            return _error(400, "service_code was not found")
        if not (("lat" in one and "long" in one) or one.get("address_string")):
            return _error(400, "a location (lat and long, or address_string) is required")
        now = _now()
        with self._lock:
            rid = str(next(self._ids))
            self.requests[rid] = {
                "service_request_id": rid,
                "status": "open",
                "status_notes": None,
                "service_name": service["service_name"],
                "service_code": code,
                "description": one.get("description"),
                "agency_responsible": "Lucheng street works",
                "service_notice": None,
                "requested_datetime": now,
                "updated_datetime": now,
                "expected_datetime": None,
                "address": one.get("address_string"),
                "address_id": None,
                "zipcode": None,
                "lat": float(one["lat"]) if "lat" in one else None,
                "long": float(one["long"]) if "long" in one else None,
                "media_url": None,
            }
            self.posted[rid] = params
            if self.token_flow:
                token = f"tok-{next(self._tokens)}"
                self.tokens[token] = None
                self._pending[token] = rid
                return json_answer(200, [{"token": token}])
        return json_answer(
            200, [{"service_request_id": rid, "service_notice": "", "account_id": None}]
        )

    def _list(self, params: dict[str, list[str]]) -> Answer:
        wanted = params.get("service_request_id")
        with self._lock:
            if wanted:
                ids = [i for i in wanted[0].split(",") if i]
                return json_answer(200, [self.requests[i] for i in ids if i in self.requests])
            return json_answer(200, list(self.requests.values()))

    def _find(self, rid: str) -> dict[str, Any] | None:
        with self._lock:
            return self.requests.get(rid)

    def _token(self, token: str) -> Answer:
        with self._lock:
            if token not in self.tokens:
                return _error(404, "no such token")
            rid = self.tokens[token]
        if rid is None:
            return json_answer(200, [{"token": token}])
        return json_answer(200, [{"service_request_id": rid, "token": token}])

    def control(self, action: str, data: dict[str, Any]) -> Any:
        with self._lock:
            if action == "set_status":
                record = self.requests[data["id"]]
                record["status"] = data["status"]
                record["status_notes"] = data.get("notes")
                record["updated_datetime"] = _now()
                return record
            if action == "token_flow":
                self.token_flow = bool(data["on"])
                return {}
            if action == "resolve_tokens":
                self.tokens.update(self._pending)
                self._pending.clear()
                return {}
            if action == "requests":
                return {"requests": self.requests, "posted": self.posted}
        raise KeyError(action)


class GeoReportDouble(HttpDouble):
    def __init__(self, api_key: str | None = None, jurisdiction_id: str | None = None):
        super().__init__(
            "tests.support.georeport:GeoReportApp",
            {"api_key": api_key, "jurisdiction_id": jurisdiction_id},
        )

    def set_status(self, service_request_id: str, status: str, notes: str | None = None) -> dict:
        """The department changes its record (``status`` open or closed)."""
        return self.app("set_status", id=service_request_id, status=status, notes=notes)

    def close_request(self, service_request_id: str, notes: str) -> dict:
        return self.set_status(service_request_id, "closed", notes)

    def token_flow(self, on: bool = True) -> None:
        """POST answers a token instead of an id until switched off."""
        self.app("token_flow", on=on)

    def resolve_tokens(self) -> None:
        """The server has made every request it answered a token for."""
        self.app("resolve_tokens")

    def stored(self) -> dict[str, dict[str, Any]]:
        """service_request_id -> the server's record."""
        return self.app("requests")["requests"]

    def posted(self) -> dict[str, dict[str, list[str]]]:
        """service_request_id -> the form fields it was posted with."""
        return self.app("requests")["posted"]

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["method"] == "POST"]
