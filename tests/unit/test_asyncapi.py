"""docs/asyncapi.yaml: generated from contracts.py (so it cannot drift from the code), complete
(every event, subscription, department exchange and queue, the status exchange and the replies),
and valid AsyncAPI 3 by the reference tool, @asyncapi/cli (installed by `make tools`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from marshmallow import Schema, fields, validate

from gridflow_app import asyncapi
from gridflow_app.cli import main
from gridflow_common import contracts as c

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / ".tools" / "asyncapi" / "node_modules" / ".bin" / "asyncapi"


@pytest.fixture(scope="module")
def document() -> dict:
    return asyncapi.build()


# --------------------------------------------------------------------------- no drift


def test_the_committed_document_is_what_the_code_generates():
    committed = (ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8")
    assert committed == asyncapi.generate(), (
        "docs/asyncapi.yaml is older than contracts.py: run `make asyncapi` and commit it"
    )


def test_check_says_when_the_file_is_stale_and_write_mends_it(tmp_path, capsys):
    path = tmp_path / "asyncapi.yaml"
    path.write_text(asyncapi.generate().replace("case_registered", "case_registred", 1))
    assert main(["asyncapi", "--check", "--output", str(path)]) == 1
    assert "is not what the code says" in capsys.readouterr().err
    assert main(["asyncapi", "--output", str(path)]) == 0
    assert main(["asyncapi", "--check", "--output", str(path)]) == 0


def test_a_field_added_to_a_contract_shows_up_in_the_document(monkeypatch):
    class CaseVerifiedV1(c.CaseVerifiedV1):
        # Who verified it, by role.
        verifier_role = fields.String(required=True, validate=validate.Length(1, 40))

    monkeypatch.setitem(c.PAYLOAD_SCHEMAS, (c.CASE_VERIFIED, 1), CaseVerifiedV1)
    schema = asyncapi.build()["components"]["schemas"]["CaseVerifiedV1"]
    assert schema["properties"]["verifier_role"] == {
        "description": "Who verified it, by role.",
        "type": "string",
        "minLength": 1,
        "maxLength": 40,
    }
    assert "verifier_role" in schema["required"]


# --------------------------------------------------------------------------- complete


def test_every_event_with_a_publisher_has_its_exchange_channel_and_a_send(document):
    sources = asyncapi.event_sources()
    for event_type, event_version in c.PAYLOAD_SCHEMAS:
        message_id = f"{event_type}.v{event_version}"
        message = document["components"]["messages"][message_id]
        payload = message["payload"]["properties"]
        assert payload["event_type"]["const"] == event_type
        assert payload["version"]["const"] == event_version
        schema_name = c.PAYLOAD_SCHEMAS[(event_type, event_version)].__name__
        assert payload["payload"] == {"$ref": f"#/components/schemas/{schema_name}"}
        if event_type not in sources:
            continue  # no subscriber yet: test_contracts says so; no exchange to name
        channel = document["channels"][f"event.{event_type}"]
        assert channel["address"] == event_type
        exchange = channel["bindings"]["amqp"]["exchange"]
        assert (exchange["name"], exchange["type"]) == (
            c.event_exchange(sources[event_type]),
            "topic",
        )
        assert channel["bindings"]["amqp"]["is"] == "routingKey"
        send = document["operations"][f"{sources[event_type]}.publish.{event_type}"]
        assert send["action"] == "send"
        assert send["channel"] == {"$ref": f"#/channels/event.{event_type}"}


def test_an_event_nobody_subscribes_is_reported_not_silently_dropped(monkeypatch):
    heard: list[str] = []
    monkeypatch.setattr(
        c, "SUBSCRIPTIONS", tuple(s for s in c.SUBSCRIPTIONS if s.event_type != c.CASE_VERIFIED)
    )
    document = asyncapi.build(warn=heard.append)
    assert "event.case_verified" not in document["channels"]
    assert "case_verified.v1" in document["components"]["messages"]
    assert any(line.startswith("case_verified:") for line in heard)


def test_every_subscription_has_its_queue_channel_and_a_receive(document):
    for sub in c.SUBSCRIPTIONS:
        channel = document["channels"][f"queue.{sub.queue}"]
        binding = channel["bindings"]["amqp"]
        assert binding["is"] == "queue"
        assert binding["queue"]["name"] == sub.queue
        assert binding["queue"]["durable"] is True
        receive = document["operations"][f"{sub.consumer}.{sub.method}"]
        assert receive["action"] == "receive"
        assert receive["channel"] == {"$ref": f"#/channels/queue.{sub.queue}"}


def test_the_department_exchange_names_owner_and_unit_and_its_queues(document):
    cases = document["channels"]["department.cases"]
    assert cases["address"] == "{owner}.{unit}"
    assert set(cases["parameters"]) == {"owner", "unit"}
    assert cases["bindings"]["amqp"]["exchange"]["name"] == c.CASE_EXCHANGE
    assert cases["bindings"]["amqp"]["exchange"]["type"] == "topic"
    assert (
        cases["messages"]["DepartmentMessageV2"]["$ref"]
        == "#/components/messages/DepartmentMessageV2"
    )
    unit_queue = document["channels"]["department.unit-queue"]
    assert unit_queue["bindings"]["amqp"]["queue"]["name"] == c.unit_queue("{unit}")
    department_queue = document["channels"]["department.department-queue"]
    assert department_queue["bindings"]["amqp"]["queue"]["name"] == c.department_queue(
        "{department}"
    )
    assert document["operations"]["departments.dispatch"]["action"] == "send"
    message = document["components"]["schemas"]["DepartmentMessageV2"]
    assert message["properties"]["message_version"]["const"] == 2
    assert message["properties"]["location"] == {"$ref": "#/components/schemas/PlaceSchema"}
    # Schemas that refuse unknown fields say so; the additive ones do not.
    assert document["components"]["schemas"]["PlaceSchema"]["additionalProperties"] is False
    assert message["additionalProperties"] is True


def test_status_back_is_received_with_its_amqp_properties_and_answered_on_the_replies(document):
    status = document["channels"]["status.back"]
    assert status["bindings"]["amqp"]["exchange"]["name"] == c.STATUS_EXCHANGE
    headers = document["components"]["messages"]["StatusMessageV1"]["headers"]
    assert {"user_id", "gridflow-credential", "correlation_id", "message_id"} <= set(
        headers["properties"]
    )
    take = document["operations"]["intake.take-status"]
    assert take["action"] == "receive"
    assert take["reply"]["channel"] == {"$ref": "#/channels/status.replies"}
    replies = document["channels"]["status.replies"]["bindings"]["amqp"]["exchange"]
    assert (replies["name"], replies["type"]) == (c.REPLY_EXCHANGE, "direct")
    reply_queue = document["channels"]["status.reply-queue"]["bindings"]["amqp"]["queue"]
    assert reply_queue["name"] == c.reply_queue("{code}")
    assert document["channels"]["status.intake-queue"]["address"] == c.STATUS_QUEUE
    reply = document["components"]["schemas"]["StatusReplyV1"]["properties"]
    assert reply["outcome"]["enum"] == ["accepted", "refused"]
    assert reply["errors"]["additionalProperties"] == {"type": "array", "items": {"type": "string"}}


# --------------------------------------------------------------------------- the converter


class _Inner(Schema):
    """An inner thing."""

    n = fields.Integer(required=True, validate=validate.Range(min=0, max=10, max_inclusive=False))


class _Everything(Schema):
    word = fields.String(required=True, validate=validate.OneOf(("a", "b")))
    maybe = fields.String(allow_none=True, validate=validate.OneOf(("a", "b")))
    short = fields.String(validate=validate.Length(2, 5))
    exact = fields.Integer(validate=validate.Equal(2))
    ratio = fields.Float(allow_none=True, load_default=None)
    flag = fields.Boolean(load_default=False)
    when = fields.AwareDateTime(required=True)
    when_any = fields.DateTime()
    bag = fields.Dict(keys=fields.String(), values=fields.Integer())
    loose = fields.Dict()
    names = fields.List(fields.String(), validate=validate.Length(max=3), load_default=list)
    inner = fields.Nested(_Inner, allow_none=True, required=True)
    inners = fields.Nested(_Inner, many=True)
    coded = fields.String(validate=validate.Regexp(r"^[a-z]+$"))


def test_the_converter_states_each_field_type_and_validator():
    converter = asyncapi.SchemaConverter()
    schema = converter.object_schema(_Everything)
    p = schema["properties"]
    assert p["word"] == {"type": "string", "enum": ["a", "b"]}
    assert p["maybe"] == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert p["short"] == {"type": "string", "minLength": 2, "maxLength": 5}
    assert p["exact"] == {"type": "integer", "const": 2}
    assert p["ratio"] == {"type": ["number", "null"], "default": None}
    assert p["flag"] == {"type": "boolean", "default": False}
    assert p["when"] == p["when_any"] == {"type": "string", "format": "date-time"}
    assert p["bag"] == {
        "type": "object",
        "propertyNames": {"type": "string"},
        "additionalProperties": {"type": "integer"},
    }
    assert p["loose"] == {"type": "object"}
    assert p["names"] == {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 3,
        "default": [],
    }
    assert p["inner"] == {"oneOf": [{"$ref": "#/components/schemas/_Inner"}, {"type": "null"}]}
    assert p["inners"] == {"type": "array", "items": {"$ref": "#/components/schemas/_Inner"}}
    assert p["coded"] == {"type": "string", "pattern": "^[a-z]+$"}
    assert schema["required"] == ["word", "when", "inner"]
    assert schema["additionalProperties"] is False  # marshmallow's default: unknown = RAISE
    assert converter.components["_Inner"]["description"] == "An inner thing."
    assert converter.components["_Inner"]["properties"]["n"] == {
        "type": "integer",
        "minimum": 0,
        "exclusiveMaximum": 10,
    }


def test_the_converter_refuses_what_it_cannot_state_naming_the_field():
    class WithFunction(Schema):
        odd = fields.Integer(validate=lambda n: n % 2 == 1)

    class Colour(fields.Field):
        pass

    class WithOwnField(Schema):
        colour = Colour()

    converter = asyncapi.SchemaConverter()
    with pytest.raises(asyncapi.AsyncApiError, match=r"WithFunction\.odd: validator"):
        converter.object_schema(WithFunction)
    with pytest.raises(
        asyncapi.AsyncApiError, match=r"WithOwnField\.colour: no JSON Schema for Colour"
    ):
        converter.object_schema(WithOwnField)


def test_two_schemas_of_one_name_are_refused():
    first = type("Twin", (Schema,), {"a": fields.String()})
    second = type("Twin", (Schema,), {"b": fields.String()})
    converter = asyncapi.SchemaConverter()
    converter.reference(first)
    with pytest.raises(asyncapi.AsyncApiError, match="two schemas are named Twin"):
        converter.reference(second)


# --------------------------------------------------------------------------- @asyncapi/cli


def _asyncapi_cli() -> Path:
    found = Path(os.environ["ASYNCAPI_CLI"]) if os.environ.get("ASYNCAPI_CLI") else CLI
    if found.exists():
        return found
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"@asyncapi/cli is not installed at {found}: CI must run `make tools` first")
    pytest.skip(
        f"@asyncapi/cli is not installed at {found}: run `make tools` (npm, about a minute)"
    )


def _validate(cli: Path, path: Path) -> subprocess.CompletedProcess:
    # CI=true: the CLI sends no usage metrics and asks nothing.
    env = {**os.environ, "CI": "true", "SUPPRESS_NO_CONFIG_WARNING": "1"}
    return subprocess.run(
        [str(cli), "validate", str(path), "--fail-severity", "warn"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_asyncapi_cli_finds_the_document_valid_and_a_broken_one_invalid(tmp_path):
    cli = _asyncapi_cli()
    assert shutil.which("node"), "@asyncapi/cli needs node"
    done = _validate(cli, ROOT / "docs" / "asyncapi.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is valid" in done.stdout

    # The same tool refuses a document that breaks AsyncAPI 3 (so a pass above means something).
    broken = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text(encoding="utf-8"))
    broken["operations"]["departments.dispatch"]["action"] = "publish"  # AsyncAPI 2's word
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken, allow_unicode=True))
    done = _validate(cli, tmp_path / "broken.yaml")
    assert done.returncode != 0
    assert "action" in done.stdout + done.stderr
