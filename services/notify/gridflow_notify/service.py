"""The notify service as a nameko process: thin adapters over ``gridflow_notify.handlers``."""

from gridflow_common.nameko_support import GridflowService, Runtime, subscribe
from gridflow_notify.handlers import DEFINITION


@subscribe
class NotifyService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = Runtime(DEFINITION)
