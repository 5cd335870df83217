"""The departments service as a nameko process: thin adapters over its handlers."""

from gridflow_common.nameko_support import GridflowService, Runtime, subscribe
from gridflow_departments.handlers import DEFINITION


@subscribe
class DepartmentsService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = Runtime(DEFINITION)
