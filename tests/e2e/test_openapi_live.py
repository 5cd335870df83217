"""Schemathesis against the live embedded default (`gridflow run`, a real HTTP server): the
schema is loaded from its own /api/v1/openapi.json, and every operation is called with examples
generated from it, as an admin and with no credential. Each answer must be no 5xx, have a
documented status and content type, and match the documented schema.

Bounded: ``MAX_EXAMPLES`` per operation and derandomized (Hypothesis's fixed seed from the test's
name), so CI runs the same requests each time, in about two minutes.

Not fuzzed, and why:
- ``GET /api/v1/board/events``: a server-sent stream that stays open for minutes by design; a
  generated call would only wait for it (its refusals are tested in test_board*).
- ``GET /metrics``: Prometheus text with no schema to conform to, and nothing a parameter changes.
- As admin only, the destructive admin routes: ``POST /api/v1/admin/reset`` empties what the
  other operations' examples stand on, ``PUT /api/v1/admin/clock`` moves the clock every case's
  SLA follows, and ``PUT /api/v1/admin/jurisdiction`` could install a generated city. They are
  fuzzed unauthenticated (every call refused), and tested by their own tests.
- As admin, ``POST /api/v1/admin/users/{username}/disable`` and ``PUT /api/v1/me/password``: a
  generated example could disable or lock out the admin whose token the run uses.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gridflow_intake.api import ROUTES
from tests.conftest import admin_token

pytestmark = pytest.mark.api_fuzz

MAX_EXAMPLES = 25
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NOT_FUZZED = "^/(metrics|api/v1/board/events)$"
DESTRUCTIVE_FOR_THE_RUN = (
    "put_clock",
    "post_reset",
    "put_jurisdiction",
    "post_user_disable",
    "put_my_password",
)


# Parametrized from the routing table (the live document is the same one, built from it), so each
# operation is a test of its own; the generated requests come from the live document.
ENDPOINTS = [
    r.endpoint
    for r in ROUTES
    # schemathesis leaves out the operation its schema was loaded from (the document itself:
    # test_the_live_document_is_the_built_one checks it).
    if not re.match(NOT_FUZZED, r.path) and r.endpoint != "get_openapi"
]


@pytest.fixture(scope="module")
def live_operations(embedded_url):
    schema = schemathesis.openapi.from_url(embedded_url + "/api/v1/openapi.json")
    schema.config.base_url = embedded_url
    operations = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        operations[operation.definition.raw["operationId"]] = operation
    return operations


@pytest.fixture(scope="module")
def admin_headers(embedded_url):
    return {"Authorization": f"Bearer {admin_token(embedded_url)}"}


def _fuzz(operation, headers):
    # schemathesis's own pytest plugin does not run under this pytest (9.x); Hypothesis drives
    # the operation's strategy directly, with the same settings.
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    # Valid requests and requests that break the schema (the 4xx each must answer with).
    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    )
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e not in DESTRUCTIVE_FOR_THE_RUN])
def test_every_operation_keeps_its_word_to_an_admin(endpoint, live_operations, admin_headers):
    _fuzz(live_operations[endpoint], admin_headers)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_operation_keeps_its_word_to_a_stranger(endpoint, live_operations):
    _fuzz(live_operations[endpoint], {})


def test_the_live_document_is_the_built_one_and_valid(embedded_url):
    from openapi_spec_validator import validate

    from gridflow_intake import openapi

    answer = httpx.get(embedded_url + "/api/v1/openapi.json", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == json.loads(json.dumps(openapi.build()))
    validate(answer.json())
