"""The routing service as a nameko process: thin adapters over ``gridflow_routing.handlers``."""

from gridflow_common.nameko_support import GridflowService, Runtime, subscribe
from gridflow_routing.handlers import DEFINITION


@subscribe
class RoutingService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = Runtime(DEFINITION)
