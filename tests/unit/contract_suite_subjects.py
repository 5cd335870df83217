"""Adapters that break the contract, each in one way, for test_contract_suite.py: the loader must
refuse the first three, and the contract suite must catch each of the others (a suite that
passes them would pass anything). The working ones are built on the example filedrop adapter and
run against its harness."""

from __future__ import annotations

import uuid

from gridflow_filedrop.adapter import FiledropAdapter
from gridflow_filedrop.testing import FiledropHarness
from marshmallow import Schema

from gridflow_common.adapters import (
    AdapterConfig,
    Delivery,
    DepartmentAdapter,
    Health,
    PushFailed,
    PushRefused,
    PushResult,
    StatusReport,
)

# -- refused by the loader ---------------------------------------------------------------------


class NotAnAdapter:
    """Has every method, but is not a DepartmentAdapter."""

    name = "not-an-adapter"

    def push(self, delivery):
        return PushResult()


class WithoutHealth(DepartmentAdapter):
    name = "without-health"

    def push(self, delivery):
        return PushResult()

    def push_change(self, delivery):
        return PushResult()

    def take_status(self, body):
        raise ValueError("none")

    def poll_status(self, open_deliveries):
        return []


class NotASchema:
    pass


class ConfigSchemaNotASchema(FiledropAdapter):
    name = "bad-schema"
    config_schema = NotASchema  # type: ignore[assignment]


class ConfigSchemaInstance(FiledropAdapter):
    name = "schema-instance"
    config_schema = Schema()  # type: ignore[assignment]  # an instance, not the class


not_a_class = FiledropAdapter(
    AdapterConfig(code="x", adapter="filedrop", endpoint="/nowhere"), None
)  # type: ignore[arg-type]

# -- loaded, then caught by the suite ----------------------------------------------------------


class FreshKeyEachPush(FiledropAdapter):
    """A repeat of a delivery lands as a new file: the office cannot drop the copy."""

    name = "fresh-key"

    def push(self, delivery: Delivery) -> PushResult:
        return super().push(
            Delivery(
                **{
                    **delivery.__dict__,
                    "delivery_id": f"{delivery.delivery_id}-{uuid.uuid4().hex[:6]}",
                }
            )
        )


class SwallowsOutages(FiledropAdapter):
    """Says it delivered what it could not: the case would be lost."""

    name = "swallows-outages"

    def push(self, delivery: Delivery) -> PushResult:
        try:
            return super().push(delivery)
        except PushFailed:
            return PushResult(detail="pretended")


class RetriesRefusals(FiledropAdapter):
    """Reports a permanent refusal as an outage: retried for hours for nothing."""

    name = "retries-refusals"

    def push(self, delivery: Delivery) -> PushResult:
        try:
            return super().push(delivery)
        except PushRefused as exc:
            raise PushFailed(exc.reason) from None


class GuessesWords(FiledropAdapter):
    """Maps the department's words itself instead of leaving them to the city's table."""

    name = "guesses-words"

    def take_status(self, body) -> StatusReport:
        report = super().take_status(body)
        return StatusReport(**{**report.__dict__, "word": "accepted"})


class ReportsEveryPoll(FiledropAdapter):
    """Reports a status again on every poll, changed or not."""

    name = "reports-every-poll"

    def poll_status(self, open_deliveries):
        return [r for o in open_deliveries if (r := self._read_status(o)) is not None]


class AlwaysHealthy(FiledropAdapter):
    name = "always-healthy"

    def health(self) -> Health:
        return Health(True, "fine")


class LeaksItsSecret(FiledropAdapter):
    """Puts the department's secret in the reason of a failure (and so in logs and events)."""

    name = "leaks-secret"

    def push(self, delivery: Delivery) -> PushResult:
        try:
            return super().push(delivery)
        except PushFailed:
            secret = self.context.secret(self.config.credential_ref or "")
            raise PushFailed(f"could not write with token {secret}") from None


class HarnessWithASecret(FiledropHarness):
    """The filedrop harness, its config naming a credential (filedrop itself needs none)."""

    secret = "s3cret-" + uuid.uuid4().hex

    def config(self) -> AdapterConfig:
        return AdapterConfig(
            code="office-filedrop",
            adapter="filedrop",
            endpoint=str(self.folder),
            credential_ref="env:FILEDROP_SUITE_SECRET",
        )

    def context(self):
        base = super().context()
        return type(base)(
            secret=lambda ref: self.secret,
            sign_link=base.sign_link,
            public_url=base.public_url,
            now=base.now,
        )


def harness_with_a_secret() -> HarnessWithASecret:
    return HarnessWithASecret()
