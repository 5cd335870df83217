"""What the channel tests share: keys issued the way an admin issues them, form posts, the
shared Open311 JSON Schemas (../shared/open311-georeport-v2, found as the scenarios are), and
a look at what a request left behind."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gridflow_common.domain.access import CHANNEL_KEY
from gridflow_intake.models import cases, reports
from tests.conftest import SHARED

OPEN311_SCHEMAS = SHARED / "open311-georeport-v2"
POINT = {"lat": 28.05, "lon": 120.635}
STREETLIGHT = "component.streetlight"


def schema_validator(name: str) -> Draft7Validator:
    """A validator of one of the shared schemas, the others reachable by their file names."""
    files = sorted(OPEN311_SCHEMAS.glob("*.json"))
    if not files:
        raise FileNotFoundError(
            f"no Open311 schemas in {OPEN311_SCHEMAS}: set GRIDFLOW_SHARED to the shared folder"
        )
    registry: Registry = Registry().with_resources(
        (
            p.name,
            Resource.from_contents(json.loads(p.read_text()), default_specification=DRAFT7),
        )
        for p in files
    )
    return Draft7Validator(json.loads((OPEN311_SCHEMAS / name).read_text()), registry=registry)


def assert_valid(name: str, data: Any) -> None:
    errors = [e.message for e in schema_validator(name).iter_errors(data)]
    assert not errors, errors


def channel_key(gridflow: Any, channel: str, **extra: Any) -> str:
    _, token = gridflow.identities().issue(
        CHANNEL_KEY, label=f"test {channel}", channel=channel, **extra
    )
    return token


def call(
    api: Any,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> Any:
    all_headers = dict(headers or {})
    if content_type:
        all_headers["Content-Type"] = content_type
    environ = EnvironBuilder(
        path=path,
        method=method,
        data=body,
        headers=list(all_headers.items()),
        query_string=urlencode(query or {}),
    ).get_environ()
    return api.answer(Request(environ))


def post_form(api: Any, path: str, form: dict[str, str] | bytes, **kw: Any) -> Any:
    body = form if isinstance(form, bytes) else urlencode(form).encode()
    kw.setdefault("content_type", "application/x-www-form-urlencoded")
    return call(api, "POST", path, body, **kw)


def counts(gridflow: Any) -> tuple[int, int]:
    """(cases, reports) in the embedded database."""
    with gridflow.engine.connect() as conn:
        return (
            conn.execute(sa.select(sa.func.count()).select_from(cases)).scalar(),
            conn.execute(sa.select(sa.func.count()).select_from(reports)).scalar(),
        )


def report_rows(gridflow: Any, channel: str) -> list[dict]:
    with gridflow.engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(sa.select(reports).where(reports.c.channel == channel)).all()
        ]
