"""The notify service as a nameko process: thin adapters over ``gridflow_notify.handlers``."""

from nameko.rpc import rpc

from gridflow_common.nameko_support import GridflowService, Runtime, subscribe
from gridflow_notify import handlers
from gridflow_notify.handlers import DEFINITION


@subscribe
class NotifyService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = Runtime(DEFINITION)

    @rpc
    def case_notifications(self, case_id: str) -> dict:
        """The notices sent for a case, as its page shows them (contacts masked): intake asks,
        having decided the caller may read the case."""
        with self.runtime.work() as work:
            return handlers.case_notices(work, case_id)
