"""The routing service as a nameko process: thin adapters over ``gridflow_routing.handlers``."""

from nameko.rpc import rpc

from gridflow_common.nameko_support import GridflowService, Runtime, subscribe
from gridflow_routing import handlers
from gridflow_routing.handlers import DEFINITION


@subscribe
class RoutingService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = Runtime(DEFINITION)

    @rpc
    def current_assignment(self, case_id: str) -> dict | None:
        """Who holds the case now: routing is the authority, asked when a view lags behind."""
        with self.runtime.work() as work:
            return handlers.current_assignment(work, case_id)
