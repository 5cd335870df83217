"""The sla service as a nameko process: thin adapters over ``gridflow_sla.handlers``."""

from gridflow_common.nameko_support import GridflowService, Runtime, subscribe
from gridflow_sla.handlers import DEFINITION


@subscribe
class SlaService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = Runtime(DEFINITION)
