"""``GET /api/v1/cases`` (find cases: filters, sort, cursor paging, totals by colour) and
``GET /api/v1/board/summary`` (the board's counts of open cases and its late list), for the
command center, leaders, departments, streets, communities and grid workers, each cut to what
the caller may read (``scope.case_scope_clause``). ``IntakeApi`` inherits the endpoints; the
queries are ``case_search``'s.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gridflow_common import links
from gridflow_intake import case_search as cs
from gridflow_intake.links_api import LINK_SECRET_EXTRA

if TYPE_CHECKING:
    from gridflow_intake.api import Answer, Call


def _answer(status: int, body: Any) -> Answer:
    # api.py imports this module (IntakeApi inherits the endpoints): Answer is looked up when an
    # answer is made, by which time both are loaded.
    from gridflow_intake.api import Answer

    return Answer(status, body)


class CaseListEndpoints:
    # Provided by IntakeApi.
    runtime: Any
    _audit_within: Callable[[Any, Call, int], None]

    def _cursor_key(self) -> bytes:
        """The list cursors' signing key: derived from the platform's link secret (one per
        process, read once), so every replica signs and checks alike."""
        secret = self.runtime.extras.get(LINK_SECRET_EXTRA)
        if secret is None:
            secret = links.LinkSecret(self.runtime.engine)
            self.runtime.extras[LINK_SECRET_EXTRA] = secret
        return hmac.new(secret.key(), b"gridflow case list cursor", hashlib.sha256).digest()

    @staticmethod
    def _args(call: Call) -> dict[str, list[str]]:
        return {k: call.request.args.getlist(k) for k in call.request.args}

    def get_cases(self, call: Call) -> Answer:
        principal = call.principal
        assert principal is not None
        key = self._cursor_key()
        with self.runtime.work() as work:
            _, j = work.active_jurisdiction()
            query = cs.parse_query(self._args(call), j, paging=True)
            page = cs.list_cases(work.db, query, principal, j, work.now, key)
            self._audit_within(work, call, 200)
            return _answer(200, page)

    def get_board_summary(self, call: Call) -> Answer:
        principal = call.principal
        assert principal is not None
        with self.runtime.work() as work:
            _, j = work.active_jurisdiction()
            query = cs.parse_query(self._args(call), j, paging=False)
            answer = cs.summary(work.db, query, principal, j, work.now)
            self._audit_within(work, call, 200)
            return _answer(200, answer)
