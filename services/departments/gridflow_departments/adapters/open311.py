"""The Open311 GeoReport v2 adapter: a department whose system is a GeoReport v2 server gets
each case as a service request, and Gridflow asks that server for the requests' status.

- ``endpoint`` is the server's base URL (``https://311.example.org/open311/v2``); JSON format.
- ``credential_ref`` (optional) names the ``api_key`` GeoReport asks of a poster.
- ``options``: ``service_code`` (the default), ``service_codes`` (Gridflow category -> the
  server's code, which wins), ``jurisdiction_id`` (for servers that host several),
  ``delivery_attribute`` (an attribute code the server defines for an external reference: the
  delivery id is sent as ``attribute[<code>]``), ``poll_batch``, ``connect_timeout``,
  ``read_timeout``.

What the standard cannot do, and what this adapter does instead:

- **No idempotency key.** GeoReport v2 has none, so a copy cannot be recognised by the server.
  A delivery that already has an ``external_ref`` (an earlier post answered) is never posted
  again. But a post whose answer was lost (a timeout after the server made the request) is
  retried and *may create a second request* on the server; the description ends with a
  reference (``【Gridflow 案件 … 单位 … 投递 <delivery_id>】``) and, where the server defines
  ``delivery_attribute``, an attribute, so its staff or a script can see the two are one.
- **No update operation.** A later change of a case (withdrawn, colour, closed, rework) cannot
  be sent: ``push_change`` delivers nothing and says so in the result's detail; the department
  sees the change in Gridflow (its inbox) and Gridflow's own status of the case is unaffected.
- **Tokens.** A server that makes requests later answers a token; it is kept as
  ``token:<token>`` and resolved through ``GET tokens/<token>.json`` when polling.

Polling: ``GET requests.json?service_request_id=a,b,c`` in batches; a request whose ``status``
(open/closed: the department's word) differs from the ``last_word`` Gridflow recorded, or whose
``status_notes`` changed since this adapter last saw it, is reported, with the notes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from gridflow_common.adapters.contract import (
    AdapterConfig,
    AdapterContext,
    Delivery,
    DepartmentAdapter,
    Health,
    OpenDelivery,
    PushFailed,
    PushRefused,
    PushResult,
    SecretUnavailable,
    StatusReport,
)
from gridflow_common.domain import privacy
from gridflow_departments.adapters.http_calls import HttpCaller, host, short

log = logging.getLogger(__name__)

TOKEN_PREFIX = "token:"
# GeoReport's limit on a description.
DESCRIPTION_LIMIT = 4000
REFERENCE = "【Gridflow 案件 {case_id} 单位 {unit} 投递 {delivery_id}】"
_REFERENCE = re.compile(r"【Gridflow 案件 (\S+) 单位 (\S+) 投递 ([^\s】]+)】")


class Open311Options(Schema):
    service_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(1))
    service_codes = fields.Dict(
        keys=fields.String(validate=validate.Length(1)),
        values=fields.String(validate=validate.Length(1)),
        load_default=dict,
    )
    jurisdiction_id = fields.String(load_default=None, allow_none=True)
    delivery_attribute = fields.String(
        load_default=None, allow_none=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,60}$")
    )
    # Ids per status query: a GET URL stays well under servers' limits.
    poll_batch = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    connect_timeout = fields.Float(load_default=3.0, validate=validate.Range(min=0.1, max=60))
    read_timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0.1, max=300))

    @validates_schema
    def some_service_code(self, data: dict, **_: object) -> None:
        if not data.get("service_code") and not data.get("service_codes"):
            raise ValidationError(
                "give service_code (the default) or service_codes (category -> code)",
                "service_code",
            )


class Open311Adapter(DepartmentAdapter):
    name: ClassVar[str] = "open311"
    config_schema: ClassVar[type[Schema]] = Open311Options
    endpoint_schemes: ClassVar[tuple[str, ...]] = ("https", "http")
    polls: ClassVar[bool] = True

    def __init__(self, config: AdapterConfig, context: AdapterContext):
        super().__init__(config, context)
        options = Open311Options().load(dict(config.options))
        self.base = (config.endpoint or "").rstrip("/")
        self.service_code: str | None = options["service_code"]
        self.service_codes: dict[str, str] = dict(options["service_codes"])
        self.jurisdiction_id: str | None = options["jurisdiction_id"]
        self.delivery_attribute: str | None = options["delivery_attribute"]
        self.poll_batch: int = options["poll_batch"]
        self.http = HttpCaller(options["connect_timeout"], options["read_timeout"], context.now)
        # delivery_id -> (word, notes) last seen here: notes can change while the word stays.
        self._seen: dict[str, tuple[str, str | None]] = {}
        # token -> service_request_id, once the server told it.
        self._resolved: dict[str, str] = {}

    # -- pushing ----------------------------------------------------------------------------
    def push(self, delivery: Delivery) -> PushResult:
        if delivery.external_ref:
            # Posted before and answered: GeoReport cannot drop a copy, so none is sent.
            return PushResult(
                external_ref=delivery.external_ref,
                detail=f"already posted as {delivery.external_ref}; not posted again",
            )
        api_key = self._api_key()
        started = time.monotonic()
        try:
            form = self._form(delivery, api_key)
            reply = self.http.call("POST", self._url("requests.json"), data=form)
            log.info(
                "open311 post %s (attempt %d) to %s: HTTP %d in %d ms",
                delivery.delivery_id,
                delivery.attempt,
                reply.where,
                reply.status,
                round((time.monotonic() - started) * 1000),
            )
            self.http.raise_unless_done(reply, api_key, "the service request")
            ref = _posted_ref(reply.text)
            if ref is None:
                # Made or not, nobody can tell: retrying risks a copy, giving up risks a loss;
                # a copy can be seen and merged, a loss cannot.
                raise PushFailed(
                    f"{reply.where} answered HTTP {reply.status} without a service_request_id "
                    "or token; the post will be retried (the server may then hold a copy)"
                )
        except (PushFailed, PushRefused) as exc:
            log.warning("open311 post %s not delivered: %s", delivery.delivery_id, exc.reason)
            raise
        return PushResult(external_ref=ref, detail=f"HTTP {reply.status}")

    def push_change(self, delivery: Delivery) -> PushResult:
        change = delivery.message.get("change")
        return PushResult(
            external_ref=delivery.external_ref,
            detail=(
                f"GeoReport v2 has no operation to update a service request: the change "
                f"({change}) was not sent; the department sees it in Gridflow"
            ),
        )

    def _form(self, delivery: Delivery, api_key: str | None) -> dict[str, str]:
        message = delivery.message
        category = message.get("category")
        code = self.service_codes.get(category or "") or self.service_code
        if not code:
            raise PushRefused(
                f"no GeoReport service_code for category {category!r}: add it to the "
                "options' service_codes (or give a default service_code)"
            )
        form: dict[str, str] = {"service_code": code}
        reference = "\n\n" + REFERENCE.format(
            case_id=delivery.case_id, unit=delivery.unit, delivery_id=delivery.delivery_id
        )
        text = str(message.get("description") or "")
        form["description"] = text[: DESCRIPTION_LIMIT - len(reference)] + reference
        location = message.get("location") or {}
        point = location.get("point")
        if point:
            form["lat"] = repr(float(point["lat"]))
            form["long"] = repr(float(point["lon"]))
        address = location.get("address") or " ".join(
            str(location[k]) for k in ("street", "community", "grid") if location.get(k)
        )
        if address:
            form["address_string"] = address
        if not point and not address:
            raise PushRefused("the case has neither a point nor an address: GeoReport needs one")
        reporter = message.get("reporter") or {}
        # Only what the city's data let this department see whole (a masked number is no use
        # to the department's staff, and is not theirs to store).
        whole = {
            key
            for key in (privacy.unmasked_reporter_fields(reporter) if reporter else ())
            if "*" not in str(reporter[key])
        }
        if "phone" in whole:
            form["phone"] = str(reporter["phone"])
        if "name" in whole:
            # A Chinese name is one string, family name first: GeoReport's first/last split
            # would be a guess, so the whole name goes in last_name.
            form["last_name"] = str(reporter["name"])
        if api_key:
            form["api_key"] = api_key
        if self.jurisdiction_id:
            form["jurisdiction_id"] = self.jurisdiction_id
        if self.delivery_attribute:
            form[f"attribute[{self.delivery_attribute}]"] = delivery.delivery_id
        return form

    def _api_key(self) -> str | None:
        ref = self.config.credential_ref
        if not ref:
            return None
        try:
            return self.context.secret(ref)
        except SecretUnavailable as exc:
            raise PushFailed(
                f"the api_key {ref} of {self.config.code} cannot be read here ({exc}); "
                "an operator can provide it and the post will be retried"
            ) from None

    # -- status -----------------------------------------------------------------------------
    def poll_status(self, open_deliveries: Sequence[OpenDelivery]) -> list[StatusReport]:
        """What changed at the server. Raises ``PushFailed`` when it cannot be asked now and
        ``PushRefused`` when it refuses the query (the caller logs it and asks again later);
        deliveries without an id yet (no answer, an unresolved token) are skipped."""
        by_id: dict[str, OpenDelivery] = {}
        for od in open_deliveries:
            rid = self._request_id(od.external_ref)
            if rid is not None:
                by_id[rid] = od
        reports: list[StatusReport] = []
        ids = list(by_id)
        for start in range(0, len(ids), self.poll_batch):
            batch = ids[start : start + self.poll_batch]
            for record in self._requests(batch):
                rid = str(record.get("service_request_id") or "")
                asked = by_id.pop(rid, None)
                if asked is None:
                    continue  # a server that answers more than asked, or twice
                report = self._change(asked, rid, record)
                if report is not None:
                    reports.append(report)
        return reports

    def _change(self, od: OpenDelivery, rid: str, record: Mapping[str, Any]) -> StatusReport | None:
        word = record.get("status")
        if not isinstance(word, str) or not word:
            log.warning("open311 request %s at %s has no status", rid, host(self.base))
            return None
        notes = record.get("status_notes")
        notes = notes if isinstance(notes, str) and notes else None
        seen = self._seen.get(od.delivery_id)
        self._seen[od.delivery_id] = (word, notes)
        # The word against what Gridflow recorded (survives restarts); the notes against what
        # this adapter saw (a restart forgets them: notes changed meanwhile with the word
        # unchanged are not reported, which is preferred to repeating every note after each).
        if word == od.last_word and (seen is None or seen == (word, notes)):
            return None
        return StatusReport(
            case_id=od.case_id,
            unit=od.unit,
            word=word,
            note=notes,
            assignment_id=od.assignment_id,
            delivery_id=od.delivery_id,
            external_ref=rid,
            occurred_at=_instant(record.get("updated_datetime")),
        )

    def _request_id(self, external_ref: str | None) -> str | None:
        if not external_ref:
            return None
        if not external_ref.startswith(TOKEN_PREFIX):
            return external_ref
        token = external_ref[len(TOKEN_PREFIX) :]
        if token not in self._resolved:
            reply = self.http.call(
                "GET", self._url(f"tokens/{quote(token, safe='')}.json"), params=self._params()
            )
            try:
                self.http.raise_unless_done(reply, None, "the token")
            except PushRefused as exc:
                # One token the server does not know must not stop the others' polls.
                log.warning("open311 token %s: %s", token, exc.reason)
                return None
            rid = _token_request_id(reply.text)
            if rid is None:
                return None  # not made yet: asked again next time
            self._resolved[token] = rid
        return self._resolved[token]

    def _requests(self, ids: list[str]) -> list[Mapping[str, Any]]:
        params = {"service_request_id": ",".join(ids), **self._params()}
        reply = self.http.call("GET", self._url("requests.json"), params=params)
        self.http.raise_unless_done(reply, None, "the status query")
        try:
            data = json.loads(reply.text)
        except ValueError:
            raise PushFailed(f"{reply.where} answered the status query with no JSON") from None
        if not isinstance(data, list):
            raise PushFailed(f"{reply.where} answered the status query with no list")
        return [r for r in data if isinstance(r, Mapping)]

    def take_status(self, body: Mapping[str, Any]) -> StatusReport:
        """A GeoReport service request object (as ``GET requests/<id>.json`` gives it, or a
        server posts it) in the department's words. The case is the object's ``case_id``, or
        the reference this adapter put at the end of its description."""
        if not isinstance(body, Mapping):
            raise ValueError("body: a service request is a JSON object")
        rid = body.get("service_request_id")
        if not isinstance(rid, (str, int)) or isinstance(rid, bool) or str(rid) == "":
            raise ValueError("service_request_id: missing or not a string")
        word = body.get("status")
        if not isinstance(word, str) or not word.strip() or len(word) > 60:
            raise ValueError("status: missing, empty or longer than 60 characters")
        notes = body.get("status_notes")
        if notes is not None and not isinstance(notes, str):
            raise ValueError("status_notes: must be a string or null")
        found = _REFERENCE.search(str(body.get("description") or ""))
        case_id = body.get("case_id") or (found.group(1) if found else None)
        if not isinstance(case_id, str) or not case_id:
            raise ValueError(
                "case_id: the request names no Gridflow case (no case_id, and its "
                "description carries no Gridflow reference)"
            )
        unit = body.get("unit") or (found.group(2) if found else None) or self.config.code
        return StatusReport(
            case_id=case_id,
            unit=str(unit),
            word=word.strip(),
            note=notes or None,
            delivery_id=found.group(3) if found else None,
            external_ref=str(rid),
            occurred_at=_instant(body.get("updated_datetime")),
        )

    def health(self) -> Health:
        try:
            reply = self.http.call("GET", self._url("services.json"), params=self._params())
        except PushFailed as exc:
            return Health(False, exc.reason)
        if reply.status != 200:
            return Health(False, f"GET services.json at {reply.where}: HTTP {reply.status}")
        try:
            services = json.loads(reply.text)
        except ValueError:
            return Health(False, f"services.json at {reply.where} is not JSON")
        if not isinstance(services, list):
            return Health(False, f"services.json at {reply.where} is not a list")
        return Health(True, f"{len(services)} services at {reply.where}")

    def close(self) -> None:
        self.http.close()

    def _params(self) -> dict[str, str]:
        """What every call carries: the jurisdiction, for a server that hosts several."""
        return {"jurisdiction_id": self.jurisdiction_id} if self.jurisdiction_id else {}

    def _url(self, path: str) -> str:
        return f"{self.base}/{path}"


def _answer_field(text: str, key: str) -> str | None:
    """``key`` of a GeoReport answer (a list of one object, or the object), when it is a
    non-empty string or number."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    item = data[0] if isinstance(data, list) and data else data
    if not isinstance(item, Mapping):
        return None
    value = item.get(key)
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        return str(value)
    return None


def _posted_ref(text: str) -> str | None:
    """The external_ref from a POST requests.json answer: the service_request_id, else
    ``token:<token>``."""
    rid = _answer_field(text, "service_request_id")
    if rid is not None:
        return short(rid)
    token = _answer_field(text, "token")
    return TOKEN_PREFIX + short(token) if token is not None else None


def _token_request_id(text: str) -> str | None:
    return _answer_field(text, "service_request_id")


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else None
