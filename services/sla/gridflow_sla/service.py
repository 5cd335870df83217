"""The sla service as a nameko process: thin adapters over ``gridflow_sla.handlers``."""

from nameko.timer import timer

from gridflow_common.nameko_support import GridflowService, Runtime, subscribe
from gridflow_sla.handlers import DEFINITION, SWEEP_INTERVAL_SECONDS, sweep_on_timer


@subscribe
class SlaService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = Runtime(DEFINITION)

    # Beside the 1 s tick (retries, pruning, the open-clock gauge): a crossing is acted on
    # within about this interval of its instant, and a look with nothing due is one indexed
    # range scan that returns no row.
    @timer(interval=SWEEP_INTERVAL_SECONDS)
    def sweep_clocks(self) -> None:
        sweep_on_timer(self.runtime)
