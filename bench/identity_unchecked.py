"""The product's intake service with its HTTP API answering through ``UncheckedApi``: the
benchmark's twin of intake, run by bench/identity_cost.py as a second intake replica beside the
product's, so that the unchecked request is measured over the same HTTP path as the checked one.
Never deployed: only `nameko run bench.identity_unchecked:UncheckedIntakeService`, started by the
benchmark, runs it."""

from __future__ import annotations

from nameko.web.handlers import http

from bench.identity_cost import UncheckedApi
from gridflow_common import contracts as c
from gridflow_intake.service import ALL_METHODS, IntakeService, NamekoPeers


class UncheckedIntakeService(IntakeService):
    # The same name: a replica of intake (its queues, its database), not a service of its own.
    name = IntakeService.name

    @http(ALL_METHODS, "/")
    @http(ALL_METHODS, "/<path:rest>")
    def api(self, request, rest=None):
        peers = NamekoPeers(
            {
                c.ROUTING: self.routing,
                c.DEPARTMENTS: self.departments,
                c.SLA: self.sla,
                c.NOTIFY: self.notify,
            }
        )
        return UncheckedApi(self.runtime, peers).respond(request)
