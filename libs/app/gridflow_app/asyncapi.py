"""``docs/asyncapi.yaml``, generated from ``gridflow_common.contracts`` (``gridflow asyncapi``).

Everything in the document is read from the code: the event envelope and each event's payload
schema (``PAYLOAD_SCHEMAS``), the exchange of the service that publishes it and every queue that
consumes it (``SUBSCRIPTIONS``), the department exchange and queues, the status-back exchange and
the replies (their names and schemas). A field added to a schema, an event or a subscription
shows up in the next generation, and ``gridflow asyncapi --check`` (a unit test runs it) fails
while the committed file is older than the code.

The payload schemas come from a converter of our own, marshmallow -> JSON Schema (the AsyncAPI
schema format is a superset of draft 07). It knows the field types and validators the contracts
use and refuses, naming the field, one it does not know: a constraint the document cannot state
must not silently vanish from it. A field's description is the comment written above it in
contracts.py, a schema's its docstring, so the document says what the code's readers read.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from marshmallow import EXCLUDE, INCLUDE, RAISE, Schema, fields, missing, validate

from gridflow_common import contracts as c

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
# The committed document, at the root of the checkout (this file is libs/app/gridflow_app/).
DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"
CONTENT_TYPE = "application/json"

Json = dict[str, Any]


class AsyncApiError(ValueError):
    """The code holds something the generator cannot describe (a field type or validator it
    does not know, two schemas of one name): teach it here rather than lose the detail."""


# --------------------------------------------------------------------------- field comments


_FIELD_LINE = re.compile(r"^(\s+)(\w+)\s*=\s*fields\.")


def _field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment lines written right above its declaration (or after it on the
    same line), over ``cls``'s MRO; the nearest class's declaration wins."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if isinstance(klass, type) and issubclass(klass, Schema) and klass is not Schema:
            for name, comment in _own_field_comments(klass).items():
                if comment:
                    found[name] = comment
                else:
                    found.pop(name, None)
    return found


@functools.cache
def _own_field_comments(klass: type) -> dict[str, str | None]:
    # Cached: inspect.getsource parses the whole module for each class it is asked about.
    try:
        lines = inspect.getsource(klass).splitlines()
    except (OSError, TypeError):
        return {}
    found: dict[str, str | None] = {}
    for index, line in enumerate(lines):
        match = _FIELD_LINE.match(line)
        if not match:
            continue
        indent, name = match.groups()
        comment: list[str] = []
        above = index - 1
        while above >= 0 and lines[above].startswith(indent + "#"):
            comment.insert(0, lines[above].strip()[1:].strip())
            above -= 1
        _, hash_, trailing = line.partition("  # ")
        if hash_ and not comment:
            comment.append(trailing.strip())
        found[name] = " ".join(comment) or None
    return found


def _docstring(cls: type) -> str | None:
    """The class's own docstring, its lines joined into paragraphs."""
    # inspect.getdoc would inherit Schema's own docstring for a class without one.
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return None
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


# --------------------------------------------------------------------------- marshmallow -> JSON


class SchemaConverter:
    """Marshmallow schemas as JSON Schema; a nested schema becomes one component, referenced."""

    def __init__(self) -> None:
        self.components: dict[str, Json] = {}
        self._classes: dict[str, type[Schema]] = {}

    def reference(self, schema_cls: type[Schema]) -> Json:
        name = schema_cls.__name__
        known = self._classes.get(name)
        if known is not None and known is not schema_cls:
            raise AsyncApiError(
                f"two schemas are named {name} ({known.__module__} and {schema_cls.__module__}): "
                "components need one name each"
            )
        if known is None:
            self._classes[name] = schema_cls
            self.components[name] = {}  # claimed first: a schema may nest itself
            self.components[name] = self.object_schema(schema_cls)
        return {"$ref": f"#/components/schemas/{name}"}

    def object_schema(self, schema_cls: type[Schema]) -> Json:
        instance = schema_cls()
        comments = _field_comments(schema_cls)
        properties: Json = {}
        required: list[str] = []
        for name, field in instance.fields.items():
            if field.dump_only:
                continue
            key = field.data_key or name
            where = f"{schema_cls.__name__}.{name}"
            properties[key] = self.field_schema(field, where, comments.get(name))
            if field.required:
                required.append(key)
        out: Json = {"type": "object"}
        doc = _docstring(schema_cls)
        if doc:
            out["description"] = doc
        out["properties"] = properties
        if required:
            out["required"] = required
        unknown = instance.unknown
        if unknown == RAISE:
            out["additionalProperties"] = False
        elif unknown in (EXCLUDE, INCLUDE):
            # Additive changes keep the version: a reader must take (and may ignore) new fields.
            out["additionalProperties"] = True
        return out

    def field_schema(self, field: fields.Field, where: str, description: str | None = None) -> Json:
        out = self._type_of(field, where)
        for validator in field.validators:
            self._apply(validator, out, where)
        if field.allow_none:
            out = _nullable(out)
        extra: Json = {}
        if description:
            extra["description"] = description
        default = field.load_default
        if default is not missing:
            if callable(default) and default in (list, dict):
                default = default()
            if not callable(default):
                extra["default"] = default
        if not extra:
            return out
        if "$ref" in out:
            # Keywords beside a $ref are ignored by draft-07 readers: wrap it.
            out = {"allOf": [out]}
        return {**extra, **out}

    def _type_of(self, field: fields.Field, where: str) -> Json:
        # Subclasses before their bases: AwareDateTime is a DateTime, Email a String.
        if isinstance(field, fields.Nested):
            nested = field.schema
            if field.only or field.exclude:
                raise AsyncApiError(f"{where}: Nested with only/exclude is not described")
            ref = self.reference(type(nested))
            return {"type": "array", "items": ref} if field.many else ref
        if isinstance(field, fields.List):
            return {"type": "array", "items": self.field_schema(field.inner, f"{where}[]")}
        if isinstance(field, fields.Dict):
            out: Json = {"type": "object"}
            if field.key_field is not None:
                out["propertyNames"] = self._type_of(field.key_field, f"{where}{{key}}")
            if field.value_field is not None:
                out["additionalProperties"] = self.field_schema(
                    field.value_field, f"{where}{{value}}"
                )
            return out
        if isinstance(field, fields.NaiveDateTime):
            raise AsyncApiError(f"{where}: a naive datetime has no JSON Schema format")
        if isinstance(field, fields.DateTime):
            # marshmallow's default format is ISO 8601; AwareDateTime insists on an offset.
            fmt = field.format or "iso"
            if fmt not in ("iso", "iso8601"):
                raise AsyncApiError(f"{where}: DateTime format {fmt!r} is not described")
            return {"type": "string", "format": "date-time"}
        if isinstance(field, fields.Date):
            return {"type": "string", "format": "date"}
        if isinstance(field, fields.Email):
            return {"type": "string", "format": "email"}
        if isinstance(field, fields.URL):
            return {"type": "string", "format": "uri"}
        if isinstance(field, fields.UUID):
            return {"type": "string", "format": "uuid"}
        if isinstance(field, fields.String):
            return {"type": "string"}
        if isinstance(field, fields.Boolean):
            return {"type": "boolean"}
        if isinstance(field, fields.Integer):
            return {"type": "integer"}
        if isinstance(field, fields.Float | fields.Decimal):
            return {"type": "number"}
        if type(field) is fields.Raw:
            return {}
        raise AsyncApiError(
            f"{where}: no JSON Schema for {type(field).__name__} (teach gridflow_app.asyncapi)"
        )

    def _apply(self, validator: object, out: Json, where: str) -> None:
        kind = out.get("type")
        if isinstance(validator, validate.OneOf):
            out["enum"] = list(validator.choices)
        elif isinstance(validator, validate.Equal):
            out["const"] = validator.comparable
        elif isinstance(validator, validate.Length):
            low, high = validator.min, validator.max
            if validator.equal is not None:
                low = high = validator.equal
            names = {
                "string": ("minLength", "maxLength"),
                "array": ("minItems", "maxItems"),
                "object": ("minProperties", "maxProperties"),
            }.get(str(kind))
            if names is None:
                raise AsyncApiError(f"{where}: Length on a {kind} is not described")
            if low is not None:
                out[names[0]] = low
            if high is not None:
                out[names[1]] = high
        elif isinstance(validator, validate.Range):
            if validator.min is not None:
                key = "minimum" if validator.min_inclusive else "exclusiveMinimum"
                out[key] = validator.min
            if validator.max is not None:
                key = "maximum" if validator.max_inclusive else "exclusiveMaximum"
                out[key] = validator.max
        elif isinstance(validator, validate.Regexp):
            out["pattern"] = validator.regex.pattern
        else:
            raise AsyncApiError(
                f"{where}: validator {validator!r} has no JSON Schema (teach gridflow_app.asyncapi)"
            )


def _nullable(schema: Json) -> Json:
    if "$ref" in schema:
        return {"oneOf": [schema, {"type": "null"}]}
    out = dict(schema)
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    if "const" in out:
        out = {"oneOf": [out, {"type": "null"}]}
    return out


# --------------------------------------------------------------------------- the document


def _amqp_exchange(name: str, kind: str) -> Json:
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {
                "name": name,
                "type": kind,
                "durable": True,
                "autoDelete": False,
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


def _amqp_queue(name: str) -> Json:
    return {
        "amqp": {
            "is": "queue",
            "queue": {
                "name": name,
                "durable": True,
                "exclusive": False,
                "autoDelete": False,
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


# How every Gridflow publisher sends (nameko_support.KombuPublisher): persistent, mandatory
# (a message no queue takes is an error, not a silent loss), JSON.
_PUBLISH_BINDING = {
    "amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": AMQP_BINDING_VERSION}
}
# Consumers acknowledge after their unit of work committed.
_CONSUME_BINDING = {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}}
_MESSAGE_BINDING = {
    "amqp": {"contentEncoding": "utf-8", "bindingVersion": AMQP_BINDING_VERSION},
}


def event_sources() -> dict[str, str]:
    """Event type -> the service that publishes it, read from the subscriptions (each names
    the source whose exchange it binds)."""
    sources: dict[str, str] = {}
    for sub in c.SUBSCRIPTIONS:
        known = sources.setdefault(sub.event_type, sub.source)
        if known != sub.source:
            raise AsyncApiError(
                f"{sub.event_type} is subscribed from two sources ({known}, {sub.source})"
            )
    return sources


def _message_id(event_type: str, event_version: int) -> str:
    return f"{event_type}.v{event_version}"


def _event_message(
    converter: SchemaConverter,
    event_type: str,
    event_version: int,
    payload_cls: type[Schema],
    source: str | None,
) -> Json:
    envelope = converter.object_schema(c.EnvelopeSchema)
    properties = dict(envelope["properties"])
    properties["event_type"] = {**properties["event_type"], "const": event_type}
    properties["version"] = {**properties["version"], "const": event_version}
    if source is not None:
        properties["source"] = {**properties["source"], "const": source}
    properties["payload"] = converter.reference(payload_cls)
    payload = {
        **envelope,
        "description": (
            "The event envelope: ``occurred_at`` is when the fact became true in the city's time."
        ),
        "properties": properties,
    }
    message: Json = {
        "name": event_type,
        "title": f"{event_type} v{event_version}",
        "contentType": CONTENT_TYPE,
        "payload": payload,
        "bindings": _MESSAGE_BINDING,
    }
    doc = _docstring(payload_cls)
    if doc:
        message["summary"] = doc.split("\n\n")[0]
    return message


def _status_message(converter: SchemaConverter) -> Json:
    return {
        "name": "StatusMessageV1",
        "title": "A department's status message",
        "summary": (
            "A department or unit says something of a case it holds (accepted, in_progress, "
            "resolved, returned with a reason, beyond_authority, an extension request, a note), "
            "in its own words or Gridflow's."
        ),
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "description": (
                "What Gridflow reads beside the body: AMQP basic properties, and one "
                "application header. The sender is proven by user_id (RabbitMQ refuses a "
                "user_id that is not the connection's own user), else by gridflow-credential. "
                "reply_to is not followed: the answer always goes to the sender's own reply "
                "queue, so no sender can write into another's."
            ),
            "properties": {
                "user_id": {
                    "type": "string",
                    "description": (
                        f"Property: the sender's RabbitMQ user, {c.amqp_user('<code>')} "
                        "(made by `gridflow amqp-users sync`)."
                    ),
                },
                "gridflow-credential": {
                    "type": "string",
                    "description": (
                        "Application header, for a system that cannot set user_id: its Gridflow "
                        "credential (as a bearer token over HTTP). A message with neither is "
                        "logged and dropped: there is nobody to answer."
                    ),
                },
                "correlation_id": {
                    "type": "string",
                    "description": "Property: echoed on the answer, so the sender can match it.",
                },
                "reply_to": {
                    "type": "string",
                    "description": (
                        "Property: not followed. The answer goes to "
                        f"{c.reply_queue('<code>')} whatever it says."
                    ),
                },
                "message_id": {
                    "type": "string",
                    "description": (
                        "Property (or the body's message_id): a repeat within 24 hours gets "
                        "the first answer and changes nothing."
                    ),
                },
                "content_type": {"type": "string", "const": CONTENT_TYPE},
            },
        },
        "correlationId": {
            "description": "The sender's correlation_id, echoed on the answer.",
            "location": "$message.header#/correlation_id",
        },
        "payload": converter.reference(c.StatusMessageV1),
        "bindings": _MESSAGE_BINDING,
    }


def _reply_message(converter: SchemaConverter) -> Json:
    return {
        "name": "StatusReplyV1",
        "title": "Gridflow's answer to a status message",
        "summary": "accepted, or refused with every problem named by field.",
        "contentType": CONTENT_TYPE,
        "headers": {
            "type": "object",
            "description": "AMQP basic properties.",
            "properties": {
                "correlation_id": {
                    "type": "string",
                    "description": "The status message's correlation_id.",
                },
                "content_type": {"type": "string", "const": CONTENT_TYPE},
            },
        },
        "correlationId": {
            "description": "The status message's correlation_id.",
            "location": "$message.header#/correlation_id",
        },
        "payload": converter.reference(c.StatusReplyV1),
        "bindings": _MESSAGE_BINDING,
    }


def _department_message(converter: SchemaConverter) -> Json:
    return {
        "name": "DepartmentMessageV2",
        "title": "A case given to a unit, or a later change of it",
        "summary": (
            "The same delivery may arrive twice: delivery_id is the idempotency key. "
            "kind 'case' gives a case as lead or assisting; kind 'change' tells of a change."
        ),
        "contentType": CONTENT_TYPE,
        "payload": converter.reference(c.DepartmentMessageV2),
        "bindings": _MESSAGE_BINDING,
    }


def _gridflow_version() -> str:
    try:
        return version("gridflow")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def build(warn: Callable[[str], None] | None = None) -> Json:
    """The AsyncAPI 3 document as a mapping. ``warn`` hears of events no subscription names
    (their publisher, so their exchange, is unknown: they get a message, not a channel)."""
    converter = SchemaConverter()
    sources = event_sources()
    channels: Json = {}
    operations: Json = {}
    messages: Json = {}

    # -- events: one channel per event on its publisher's exchange, one per consuming queue --
    versions: dict[str, list[int]] = {}
    for event_type, event_version in c.PAYLOAD_SCHEMAS:
        versions.setdefault(event_type, []).append(event_version)
    for event_type, event_versions in versions.items():
        source = sources.get(event_type)
        refs = {}
        for event_version in sorted(event_versions):
            message_id = _message_id(event_type, event_version)
            messages[message_id] = _event_message(
                converter,
                event_type,
                event_version,
                c.PAYLOAD_SCHEMAS[(event_type, event_version)],
                source,
            )
            refs[message_id] = {"$ref": f"#/components/messages/{message_id}"}
        if source is None:
            if warn:
                warn(
                    f"{event_type}: no subscription in contracts.SUBSCRIPTIONS names its "
                    "publisher, so it has a message but no channel"
                )
            continue
        channel_id = f"event.{event_type}"
        channels[channel_id] = {
            "address": event_type,
            "title": f"{event_type} on {c.event_exchange(source)}",
            "description": (
                f"Published by {source} on its topic exchange {c.event_exchange(source)} "
                f"with routing key {event_type}; every consumer has its own durable queue."
            ),
            "messages": refs,
            "bindings": _amqp_exchange(c.event_exchange(source), "topic"),
        }
        operations[f"{source}.publish.{event_type}"] = {
            "action": "send",
            "title": f"{source} publishes {event_type}",
            "summary": "From the service's outbox, after the unit of work that made it committed.",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{message_id}"} for message_id in refs
            ],
            "bindings": _PUBLISH_BINDING,
            "tags": [{"name": source}],
        }
        for sub in c.SUBSCRIPTIONS:
            if sub.event_type != event_type:
                continue
            queue_id = f"queue.{sub.queue}"
            channels[queue_id] = {
                "address": sub.queue,
                "title": f"{sub.consumer}'s queue of {event_type}",
                "description": (
                    f"Bound to {c.event_exchange(source)} with routing key {event_type}; "
                    f"consumed by {sub.consumer}.{sub.method}. Declared by the publisher "
                    "before its first publish, so no event is confirmed and then dropped."
                ),
                "messages": dict(refs),
                "bindings": _amqp_queue(sub.queue),
            }
            operations[f"{sub.consumer}.{sub.method}"] = {
                "action": "receive",
                "title": f"{sub.consumer} takes {event_type}",
                "channel": {"$ref": f"#/channels/{queue_id}"},
                "messages": [
                    {"$ref": f"#/channels/{queue_id}/messages/{message_id}"} for message_id in refs
                ],
                "bindings": _CONSUME_BINDING,
                "tags": [{"name": sub.consumer}],
            }

    # -- departments: the topic exchange of cases and the queues a department reads ---------
    messages["DepartmentMessageV2"] = _department_message(converter)
    department_ref = {"DepartmentMessageV2": {"$ref": "#/components/messages/DepartmentMessageV2"}}
    owner = {
        "description": (
            "The unit's department code (police, fire, ...), or the unit's own code for a unit "
            "that belongs to no department (a community office, a street center, the command "
            "center)."
        ),
        "examples": ["police", "community-330302104001"],
    }
    unit = {
        "description": "The unit's code (units.csv).",
        "examples": ["police-330302001", "community-330302104001"],
    }
    example_key = c.unit_routing_key("police", "police-330302001")
    channels["department.cases"] = {
        "address": "{owner}.{unit}",
        "title": f"Cases for units, on {c.CASE_EXCHANGE}",
        "description": (
            f"The topic exchange {c.CASE_EXCHANGE}: routing key "
            f"{c.unit_routing_key('{owner}', '{unit}')}, e.g. {example_key}. Gridflow declares "
            "and binds the queues: a station's system reads its unit's queue (bound with its "
            "own key), a bureau's its department's queue (bound '<department>.*': every one "
            "of its units' cases)."
        ),
        "parameters": {"owner": owner, "unit": unit},
        "messages": department_ref,
        "bindings": _amqp_exchange(c.CASE_EXCHANGE, "topic"),
    }
    channels["department.unit-queue"] = {
        "address": c.unit_queue("{unit}"),
        "title": "A unit's own queue",
        "description": (
            f"Durable, declared for every unit that exists, bound to {c.CASE_EXCHANGE} with "
            f"the unit's key {c.unit_routing_key('{owner}', '{unit}')}. Readable by the unit's "
            f"RabbitMQ user {c.amqp_user('{unit}')}."
        ),
        "parameters": {"unit": unit},
        "messages": dict(department_ref),
        "bindings": _amqp_queue(c.unit_queue("{unit}")),
    }
    channels["department.department-queue"] = {
        "address": c.department_queue("{department}"),
        "title": "A department's queue: all of its units' cases",
        "description": (
            f"Durable, bound to {c.CASE_EXCHANGE} with '<department>.*'. Readable by the "
            f"department's RabbitMQ user {c.amqp_user('{department}')}."
        ),
        "parameters": {"department": {"description": "The department's code (departments.csv)."}},
        "messages": dict(department_ref),
        "bindings": _amqp_queue(c.department_queue("{department}")),
    }
    channels["department.legacy"] = {
        "address": "{code}",
        "title": f"The first version's exchange, {c.DEPARTMENT_EXCHANGE}",
        "description": (
            f"Direct exchange, routing key = department or unit code. Retired: Gridflow "
            f"neither declares it nor publishes there any more; read {c.CASE_EXCHANGE} "
            f"through the unit and department queues."
        ),
        "parameters": {"code": {"description": "A department's or unit's code."}},
        "bindings": _amqp_exchange(c.DEPARTMENT_EXCHANGE, "direct"),
    }
    operations["departments.dispatch"] = {
        "action": "send",
        "title": "departments gives a case (or a change of it) to a unit",
        "summary": (
            "One message per unit, lead and each assisting unit alike, in order per unit; "
            "a message may be sent again with the same delivery_id."
        ),
        "channel": {"$ref": "#/channels/department.cases"},
        "messages": [{"$ref": "#/channels/department.cases/messages/DepartmentMessageV2"}],
        "bindings": _PUBLISH_BINDING,
        "tags": [{"name": c.DEPARTMENTS}],
    }

    # -- status back: departments publish, Gridflow answers on their reply queue -------------
    messages["StatusMessageV1"] = _status_message(converter)
    messages["StatusReplyV1"] = _reply_message(converter)
    sender = {
        "description": "The sender's unit or department code (its RabbitMQ user's code).",
        "examples": ["police-330302001"],
    }
    channels["status.back"] = {
        "address": "{sender}",
        "title": f"Status back, on {c.STATUS_EXCHANGE}",
        "description": (
            f"The topic exchange {c.STATUS_EXCHANGE}; routing key = the sender's code. A "
            f"department's RabbitMQ user may write here and nowhere else. A status for a case "
            "the sender's unit does not hold is refused on the reply queue."
        ),
        "parameters": {"sender": sender},
        "messages": {"StatusMessageV1": {"$ref": "#/components/messages/StatusMessageV1"}},
        "bindings": _amqp_exchange(c.STATUS_EXCHANGE, "topic"),
    }
    channels["status.intake-queue"] = {
        "address": c.STATUS_QUEUE,
        "title": "Intake's queue of status messages",
        "description": (
            f"Bound to {c.STATUS_EXCHANGE} with '#': every sender's messages. Declared with "
            f"{dict(c.STATUS_QUEUE_ARGUMENTS)}: one intake replica takes it at a time, and one "
            "sender's messages are taken in the order they were sent."
        ),
        "messages": {"StatusMessageV1": {"$ref": "#/components/messages/StatusMessageV1"}},
        "bindings": _amqp_queue(c.STATUS_QUEUE),
    }
    code = {"description": "The sender's unit or department code.", "examples": ["police"]}
    channels["status.replies"] = {
        "address": "{code}",
        "title": f"Answers, on {c.REPLY_EXCHANGE}",
        "description": (
            f"The direct exchange {c.REPLY_EXCHANGE}; routing key = the sender's code, bound "
            f"to its reply queue {c.reply_queue('{code}')}."
        ),
        "parameters": {"code": code},
        "messages": {"StatusReplyV1": {"$ref": "#/components/messages/StatusReplyV1"}},
        "bindings": _amqp_exchange(c.REPLY_EXCHANGE, "direct"),
    }
    channels["status.reply-queue"] = {
        "address": c.reply_queue("{code}"),
        "title": "A sender's reply queue",
        "description": (
            f"Durable; readable by {c.amqp_user('{code}')} alone. Every status message is "
            "answered here: accepted, or refused with the problems by field."
        ),
        "parameters": {"code": code},
        "messages": {"StatusReplyV1": {"$ref": "#/components/messages/StatusReplyV1"}},
        "bindings": _amqp_queue(c.reply_queue("{code}")),
    }
    operations["intake.take-status"] = {
        "action": "receive",
        "title": "intake takes a department's status message",
        "summary": (
            "Checked (the sender proven by user_id must hold the case), mapped from the "
            "department's words and applied once per message_id; answered either way."
        ),
        "channel": {"$ref": "#/channels/status.back"},
        "messages": [{"$ref": "#/channels/status.back/messages/StatusMessageV1"}],
        "bindings": _CONSUME_BINDING,
        "reply": {
            "channel": {"$ref": "#/channels/status.replies"},
            "messages": [{"$ref": "#/channels/status.replies/messages/StatusReplyV1"}],
        },
        "tags": [{"name": c.INTAKE}],
    }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Gridflow",
            "version": _gridflow_version(),
            "description": (
                "Generated from gridflow_common/contracts.py by `gridflow asyncapi` (make "
                "asyncapi); do not edit by hand. Gridflow's services talk by events, each on "
                "its publisher's topic exchange; department systems receive cases on "
                f"{c.CASE_EXCHANGE} and send status back on {c.STATUS_EXCHANGE}. "
                "Operations are seen from Gridflow: send = Gridflow publishes. "
                "docs/integrators.md explains the rest."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "rabbitmq": {
                "host": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": (
                    "The city's RabbitMQ, in the vhost Gridflow's AMQP_URI names (the "
                    "bindings below live there)."
                ),
                "variables": {
                    "host": {"default": "localhost"},
                    "port": {"default": "5672"},
                },
                "security": [{"$ref": "#/components/securitySchemes/rabbitmqUser"}],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": dict(sorted(converter.components.items())),
            "messages": messages,
            "securitySchemes": {
                "rabbitmqUser": {
                    "type": "userPassword",
                    "description": (
                        "Each service its own user; each department or unit "
                        f"{c.amqp_user('<code>')}, made by `gridflow amqp-users`, allowed to "
                        "read its own queues and write only to the status exchange."
                    ),
                }
            },
        },
    }


def render(document: Json) -> str:
    header = (
        "# Generated by `gridflow asyncapi` (make asyncapi) from libs/common/gridflow_common/"
        "contracts.py.\n# Do not edit: change the code and generate again.\n"
    )
    # Round trip through JSON: plain types only, so the YAML has no Python tags or anchors.
    plain = json.loads(json.dumps(document))
    return header + yaml.dump(
        plain, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=100
    )


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True


def generate(warn: Callable[[str], None] | None = None) -> str:
    return render(build(warn))


def main(check: bool, output: Path | None = None) -> int:
    """``gridflow asyncapi``: write the document (or, with --check, say whether it is stale)."""
    path = output or DOCUMENT
    text = generate(warn=lambda line: print(f"asyncapi: {line}", file=sys.stderr))
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            print(
                f"{path} is not what the code says: run `gridflow asyncapi` (make asyncapi)",
                file=sys.stderr,
            )
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0
