"""Open311 GeoReport v2 (open311.org, "GeoReport v2"): what our cases and categories look like
in it, in XML (the spec's default) and JSON, and what a posted request means to us. Standard
library only: no request, no database.

Mapping (docs/channels.md):

- a *service* is a category of the jurisdiction: ``service_code`` its code, ``service_name``
  its Chinese name, ``description`` its English name, ``keywords`` its keywords, ``group`` its
  kind (component 部件 / event 事件); ``metadata`` false: a service definition has no attributes;
- a *service request* is a case (``service_request_id`` = case id; a request that joined an
  open case of the same place answers that case's id);
- ``status``: ``closed`` when the case is closed (已结案) or rejected (不予立案, which is also
  what a case merged into another becomes); ``open`` for every other status, the long-term
  tracking list (挂账) included: it is not solved.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from gridflow_common.domain import vocabulary as v

XML = "xml"
JSON = "json"
FORMATS = (XML, JSON)
MEDIA_TYPES = {XML: "text/xml; charset=utf-8", JSON: "application/json"}
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CLOSED_STATUSES = (v.CLOSED, v.REJECTED)
OPEN, CLOSED = "open", "closed"
# GET requests: at most this many, and a date range of at most this many days (the spec's own
# suggestion for both).
MAX_REQUESTS = 1000
MAX_RANGE_DAYS = 90
MAX_IDS = 100
# A posted request's form: this many fields at most (attribute[...] included).
MAX_FORM_FIELDS = 50
MAX_DESCRIPTION = 2000
FORM_FIELDS = frozenset(
    {
        "api_key",
        "jurisdiction_id",
        "service_code",
        "lat",
        "long",
        "address_string",
        "address_id",
        "email",
        "device_id",
        "account_id",
        "first_name",
        "last_name",
        "phone",
        "description",
        "media_url",
    }
)
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{2,19}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,60}$")
_UNTAKEABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


class Open311Error(Exception):
    """A refusal in the spec's error format: each item ``(code, description)``, the description
    starting with the field it is about."""

    def __init__(self, status: int, errors: Iterable[tuple[str, str]]):
        self.status = status
        self.errors = [(field, why) for field, why in errors]
        super().__init__(self.errors)

    def items(self) -> list[dict]:
        return [{"code": self.status, "description": f"{f}: {why}"} for f, why in self.errors]


def status_of(case_status: str) -> str:
    return CLOSED if case_status in CLOSED_STATUSES else OPEN


def split_format(name: str, default: str = XML) -> tuple[str, str]:
    """``"GF-1.json"`` -> (``"GF-1"``, ``"json"``); no known suffix: the default format."""
    stem, dot, suffix = name.rpartition(".")
    if dot and suffix.lower() in FORMATS:
        return stem, suffix.lower()
    return name, default


def service(category: Any) -> dict:
    return {
        "service_code": category.code,
        "service_name": category.name_zh,
        "description": category.name_en or None,
        "metadata": False,
        "type": "realtime",
        "keywords": ",".join(category.keywords) or None,
        "group": category.kind or None,
    }


def service_definition(category: Any) -> dict:
    return {"service_code": category.code, "attributes": []}


def discovery(base_url: str, changeset: dt.datetime, contact: str) -> dict:
    return {
        "changeset": changeset.isoformat(),
        "contact": contact,
        "key_service": "向城市管理员申请 open311 渠道的 api_key (ask the city's administrator "
        "for an open311 channel key)",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": f"{base_url}/open311/v2",
                "changeset": changeset.isoformat(),
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }


def _text(value: str | None, field: str, limit: int, problems: list) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if _UNTAKEABLE.search(value):
        problems.append((field, "holds control characters (NUL or the like), which are not text"))
        return None
    if len(value) > limit:
        problems.append((field, f"at most {limit} characters"))
        return None
    return value or None


def _coordinate(value: str | None, field: str, bound: float, problems: list) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        problems.append((field, f"{value[:40]!r} is not a number"))
        return None
    if number != number or not -bound <= number <= bound:
        problems.append((field, f"must be between -{bound:g} and {bound:g}"))
        return None
    return number


def report_from_form(form: Mapping[str, str], categories: Mapping[str, Any]) -> dict:
    """The report a posted request is (``register_report``'s shape, channel ``open311``), or
    Open311Error naming every field that cannot be taken. ``form``: each field once."""
    problems: list[tuple[str, str]] = []
    unknown = sorted(
        k for k in form if k not in FORM_FIELDS and not re.match(r"^attribute\[[^\]]{1,64}\]$", k)
    )
    for name in unknown:
        problems.append((name[:64], "not a field of a GeoReport v2 request"))
    code = _text(form.get("service_code"), "service_code", 100, problems)
    if code is None and not any(f == "service_code" for f, _ in problems):
        problems.append(("service_code", "required"))
    elif code is not None and code not in categories:
        problems.append(("service_code", f"no service {code!r}; GET services lists them"))
    lat = _coordinate(form.get("lat"), "lat", 90, problems)
    lon = _coordinate(form.get("long"), "long", 180, problems)
    address = _text(form.get("address_string"), "address_string", 500, problems)
    if (lat is None) != (lon is None) and not any(f in ("lat", "long") for f, _ in problems):
        problems.append(("long" if lat is not None else "lat", "a point needs both lat and long"))
    location: dict[str, Any] | None = None
    if lat is not None and lon is not None:
        location = {"lat": lat, "lon": lon}
    elif address:
        location = {"address": address}
    elif not any(f in ("lat", "long", "address_string") for f, _ in problems):
        problems.append(("lat", "give lat and long, or address_string"))
    description = _text(form.get("description"), "description", MAX_DESCRIPTION, problems)
    if description is None and not any(f == "description" for f, _ in problems):
        # The spec makes description optional; a case needs words: the service's name stands in.
        category = categories.get(code or "")
        description = category.name_zh if category is not None else None
    reporter: dict[str, Any] = {}
    first = _text(form.get("first_name"), "first_name", 32, problems)
    last = _text(form.get("last_name"), "last_name", 32, problems)
    name = " ".join(p for p in (first, last) if p)
    if name:
        reporter["name"] = name
    phone = _text(form.get("phone"), "phone", 20, problems)
    if phone is not None:
        if _PHONE.match(phone):
            reporter["phone"] = phone
        else:
            problems.append(("phone", "not a phone number"))
    email = _text(form.get("email"), "email", 254, problems)
    if email is not None:
        if _EMAIL.match(email):
            reporter["email"] = email
        else:
            problems.append(("email", "not an e-mail address"))
    media_url = _text(form.get("media_url"), "media_url", 1000, problems)
    if media_url is not None:
        parts = urlsplit(media_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(("media_url", "not an http(s) URL"))
            media_url = None
    for name in ("jurisdiction_id", "address_id", "device_id", "account_id"):
        _text(form.get(name), name, 128, problems)
    for name in sorted(k for k in form if k.startswith("attribute[")):
        _text(form.get(name), name, 500, problems)
    if problems:
        raise Open311Error(400, problems)
    report: dict[str, Any] = {
        "channel": "open311",
        "external_id": None,
        "description": description,
        "category": code,
        "location": location,
        "reporter": reporter or None,
    }
    if media_url:
        report["media_url"] = media_url
    return report


def parse_instant(value: str, field: str) -> dt.datetime:
    """A W3C datetime (2010-01-01T00:00:00Z or with an offset), aware."""
    text = value.strip()
    try:
        instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Open311Error(
            400, [(field, f"{text[:40]!r} is not a W3C datetime like 2026-01-01T00:00:00Z")]
        ) from None
    if instant.tzinfo is None:
        raise Open311Error(400, [(field, "give the offset (Z or +08:00)")])
    if (
        not dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        <= instant
        < dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    ):
        raise Open311Error(400, [(field, "outside the years 2000 to 2099")])
    return instant


# -- XML -------------------------------------------------------------------------------------


def _xml_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _element(parent: ET.Element, name: str, value: Any) -> None:
    node = ET.SubElement(parent, name)
    if isinstance(value, Mapping):
        for key, item in value.items():
            _element(node, key, item)
    elif isinstance(value, list):
        # A list's items are named by the spec: attributes/attribute, values/value,
        # endpoints/endpoint, formats/format.
        child = {
            "attributes": "attribute",
            "values": "value",
            "endpoints": "endpoint",
            "formats": "format",
        }.get(name, "item")
        for item in value:
            _element(node, child, item)
    else:
        node.text = _xml_value(value)


def to_xml(root: str, item: str | None, data: Any) -> bytes:
    """``root`` holding one ``item`` element per entry of a list (services/service,
    service_requests/request, errors/error), or ``root`` with the fields of a dict."""
    top = ET.Element(root)
    if item is None:
        for key, value in data.items():
            _element(top, key, value)
    else:
        for entry in data:
            _element(top, item, entry)
    body = ET.tostring(top, encoding="unicode").encode("utf-8")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body
