"""``POST /api/v1/departments/{code}/updates``: a department's system says what it did with a
case, over HTTP. ``IntakeApi`` inherits the endpoint; what it does with the message is
``department_status`` (shared with the AMQP status consumer).

Who may post for ``code`` (a department or a unit):

- a request **signed** with the code's secret: HMAC-SHA256 over ``"<timestamp>.<body>"``
  (``gridflow_common.signing``), the secret named by the code's row in adapters.csv
  (``credential_ref``: the unit's own row, else its department's), the timestamp within
  ``signing.TOLERANCE_SECONDS`` of Gridflow's clock. The audit log names it
  ``department:<code>``;
- or a **credential** that answers for the code (``Authorization: Bearer``: the department's or
  unit's own key, or a department user), as for ``POST /api/v1/cases/{id}/updates``.

Refusals: 401 when neither is given, or the signature is missing, malformed, stale or wrong
(saying which, never the expected value), 403 for a credential of another department or a
``unit`` that is not the code's, 404 for an unknown code, then every refusal of a holder's
report (see ``department_status``). A repeat with the same ``Idempotency-Key`` (or body
``message_id``) within 24 hours gets the first answer and changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gridflow_common import contracts as c
from gridflow_common import secrets, signing
from gridflow_common.adapters.contract import SecretUnavailable
from gridflow_common.domain import access as a
from gridflow_common.domain import status_words as sw
from gridflow_common.logging import get_logger
from gridflow_intake import department_status as ds
from gridflow_intake import handlers as h
from gridflow_intake.access import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from gridflow_intake.api import Answer, Call

log = get_logger(__name__)

_STATUS_MESSAGE_SCHEMA = c.StatusMessageV1()
# Either way of proving who one is works here, so the challenge names the credential's scheme
# and the answer's field says what about the signature was wrong.
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _answer(status: int, body: Any, **options: Any) -> Answer:
    # api.py imports this module (IntakeApi inherits the endpoint), so Answer is looked up when
    # an answer is made, by which time both modules are loaded.
    from gridflow_intake.api import Answer

    return Answer(status, body, **options)


class DepartmentEndpoints:
    # Provided by IntakeApi.
    runtime: Any
    peers: Any
    access: Any

    def post_department_update(self, call: Call, code: str) -> Answer:
        request = call.request
        principal = call.principal
        signed = any(
            request.headers.get(name)
            for name in (signing.SIGNATURE_HEADER, signing.TIMESTAMP_HEADER)
        )
        if principal is None and not signed:
            raise Unauthenticated(
                f"sign the request with your department's secret ({signing.SIGNATURE_HEADER} "
                f"and {signing.TIMESTAMP_HEADER}) or give 'Authorization: Bearer TOKEN'"
            )
        j = self._jurisdiction()  # type: ignore[attr-defined]
        if not ds.known_code(j, code):
            raise h.Rejected(404, {"code": [f"no department or unit {code!r}"]})
        if principal is None:
            refusal = self._check_signature(call, code, j)
            if refusal is not None:
                return refusal
            call.caller = ds.DepartmentCaller(
                ds.department_principal(code, ds.SIGNED), call.caller.address, department=code
            )
            # The door let the request through unlimited (it did not know who it was yet): the
            # department's own budget, as a key's.
            self.access.limit(call.caller)
            principal = call.principal
        elif not a.speaks_for(principal, code, j):
            raise Forbidden(f"your credential does not answer for {code!r}", field="code")
        assert principal is not None
        message = self._load(_STATUS_MESSAGE_SCHEMA, call.body)  # type: ignore[attr-defined]
        key = ds.message_key(request.headers.get(signing.IDEMPOTENCY_HEADER), message)
        with self.runtime.work() as work:
            status, answer = ds.take_status_message(
                work, code, principal, message, key=key, holder_of=self.peers.current_assignment
            )
            self._audit_within(work, call, status)  # type: ignore[attr-defined]
        return _answer(status, answer)

    def _check_signature(self, call: Call, code: str, j: Any) -> Answer | None:
        """None when the request is signed with ``code``'s secret; else the 401 (or the 503
        when the secret cannot be read here) to answer with."""
        config = sw.adapter_config(j, code)
        ref = config.credential_ref if config is not None else None
        if not ref:
            return self._bad_signature(
                call,
                f"no signing secret is configured for {code!r} (adapters.csv, credential_ref); "
                "send its credential as 'Authorization: Bearer TOKEN' instead",
            )
        try:
            secret = secrets.resolve(ref)
        except SecretUnavailable as exc:
            # The city's data names a secret this server cannot read: Gridflow's fault, not the
            # caller's; the reference stays in the log.
            log.error("department_secret_unavailable", code=code, reason=str(exc))
            return _answer(
                503,
                {
                    "errors": {
                        "signature": [f"the secret of {code!r} cannot be read here; try later"]
                    }
                },
                headers={"Retry-After": "30"},
            )
        request = call.request
        try:
            signing.verify(
                secret,
                request.headers.get(signing.TIMESTAMP_HEADER),
                request.headers.get(signing.SIGNATURE_HEADER),
                call.body,
                self.runtime.operational_now().timestamp(),
            )
        except signing.BadSignature as exc:
            return self._bad_signature(call, str(exc))
        return None

    def _bad_signature(self, call: Call, why: str) -> Answer:
        # A wrong signature costs its address as a wrong token does: guessing is as slow.
        self.access.limit_failed_credential(call.caller.address)
        log.warning("department_signature_refused", address=call.caller.address, why=why)
        return _answer(401, {"errors": {"signature": [why]}}, headers=dict(_CHALLENGE))
