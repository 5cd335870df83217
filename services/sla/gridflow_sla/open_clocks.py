"""Which SLA replica exports the global ``gridflow_sla_open_clocks`` gauge: the SLA service's
designated exporter (``gridflow_common.designated``), which also exports its other global
figures."""

from __future__ import annotations

from gridflow_common.designated import DesignatedExporter, exporter_for, lock_key

# "GFSLA" in ASCII, as before the lock was shared by every global figure of the service.
LOCK_KEY = lock_key("sla")


class OpenClocksExporter(DesignatedExporter):
    def __init__(self) -> None:
        super().__init__(LOCK_KEY)


EXPORTER = exporter_for("sla")
