"""The intake service as a nameko process: the public HTTP API and intake's event projections."""

from nameko.rpc import RpcProxy
from nameko.web.handlers import http
from werkzeug.wrappers import Response

from gridflow_common import contracts as c
from gridflow_common.nameko_support import GridflowService, Runtime, subscribe
from gridflow_intake.api import IntakeApi
from gridflow_intake.handlers import DEFINITION


@subscribe
class IntakeService(GridflowService):
    name = DEFINITION.name
    definition = DEFINITION
    runtime = Runtime(DEFINITION)
    routing = RpcProxy(c.ROUTING)
    departments = RpcProxy(c.DEPARTMENTS)
    sla = RpcProxy(c.SLA)
    notify = RpcProxy(c.NOTIFY)

    def _reset_others(self) -> None:
        for proxy in (self.routing, self.departments, self.sla, self.notify):
            proxy.reset()

    @http("GET,POST,PUT", "/api/v1/<path:rest>")
    def api(self, request, rest):
        result = IntakeApi(self.runtime, self._reset_others).handle(
            request.method, request.path, request.get_data(), dict(request.headers))
        return Response(result.encoded(), status=result.status, content_type=result.content_type)
