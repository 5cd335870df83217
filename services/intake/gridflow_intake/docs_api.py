"""``GET /api/v1/openapi.json`` (this API's OpenAPI 3.1 document, ``openapi.py``) and
``GET /api/v1/docs`` (a page that shows it: ``web/docs.html`` with ``web/static/docs.js``, from
this package, nothing fetched from elsewhere, under the board's Content-Security-Policy).
``IntakeApi`` inherits the endpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridflow_intake.board_api import _page

if TYPE_CHECKING:
    from gridflow_intake.api import Answer, Call


class DocsEndpoints:
    def get_openapi(self, call: Call) -> Answer:
        from gridflow_intake import openapi
        from gridflow_intake.api import Answer

        # The document changes with a release only: a client checks again each time (cheap).
        return Answer(200, openapi.document(), headers={"Cache-Control": "no-cache"})

    def get_docs_page(self, call: Call) -> Answer:
        return _page("docs.html")
