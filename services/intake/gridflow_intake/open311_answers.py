"""What the Open311 GeoReport v2 routes answer in JSON, for the OpenAPI document.

The shapes are the specification's (their exact types are checked against the shared GeoReport
v2 JSON Schemas in tests/unit/test_open311_server.py); here every field is described as the
spec names it, extra fields allowed, so the document never contradicts an answer the spec
permits. XML answers carry the same fields and are described as text.
"""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields


class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class Open311Endpoint(_Open):
    specification = fields.String()
    url = fields.String()
    changeset = fields.String()
    type = fields.String()
    formats = fields.List(fields.String())


class Open311Discovery(_Open):
    changeset = fields.String()
    contact = fields.String()
    key_service = fields.String()
    endpoints = fields.List(fields.Nested(Open311Endpoint))


class Open311Service(_Open):
    service_code = fields.String(required=True)
    service_name = fields.String()
    description = fields.Raw()
    metadata = fields.Raw()
    type = fields.String()
    keywords = fields.Raw()
    group = fields.Raw()


class Open311ServiceDefinition(_Open):
    service_code = fields.String(required=True)
    attributes = fields.List(fields.Dict())


class Open311Request(_Open):
    service_request_id = fields.Raw()
    status = fields.String()
    status_notes = fields.Raw()
    service_name = fields.Raw()
    service_code = fields.Raw()
    description = fields.Raw()
    agency_responsible = fields.Raw()
    service_notice = fields.Raw()
    requested_datetime = fields.Raw()
    updated_datetime = fields.Raw()
    expected_datetime = fields.Raw()
    address = fields.Raw()
    address_id = fields.Raw()
    zipcode = fields.Raw()
    lat = fields.Raw()
    long = fields.Raw()
    media_url = fields.Raw()


class Open311Created(_Open):
    """A posted request's answer (one item): its id, or a token to ask for it later."""

    service_request_id = fields.Raw()
    token = fields.Raw()
    service_notice = fields.Raw()
    account_id = fields.Raw()


# The spec answers lists: one schema instance each, which the document shows as an array.
SERVICES = Open311Service(many=True)
REQUESTS = Open311Request(many=True)
CREATED = Open311Created(many=True)
