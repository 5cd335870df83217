"""The product's intake service with its HTTP API answering through ``UncheckedApi``: the
benchmark's twin of intake, run by bench/identity_cost.py as a second intake replica beside the
product's, so that the unchecked request is measured over the same HTTP path as the checked one.
Never deployed: only `nameko run bench.identity_unchecked:UncheckedIntakeService`, started by the
benchmark, runs it."""

from __future__ import annotations

from bench.identity_cost import UncheckedApi
from gridflow_intake.service import IntakeService


class UncheckedIntakeService(IntakeService):
    # The same name: a replica of intake (its queues, its database), not a service of its own.
    name = IntakeService.name
    api_class = UncheckedApi
