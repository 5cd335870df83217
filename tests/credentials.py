"""Credentials for the tests, sent the way real callers send them.

Since every door asks who is calling, a test that is not about access still needs to be
somebody: the clients here act as the admin, except for a holder's status update, which goes
with that department's or unit's own credential (made once through the identity store or the
admin API, as `gridflow replay` does), because an admin cannot speak for a department.
A test about access itself calls the bare API with exactly the credentials it means.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request

from gridflow_common.domain.access import HOLDER_KEY

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "cookie")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def names_a_credential(headers: Any) -> bool:
    return any(k.lower() in CREDENTIAL_HEADERS for k in dict(headers or {}))


def update_sender(path: str, body: Any) -> str | None:
    """The `from` of a status update's body, when ``path`` is a case's updates."""
    if not path.rstrip("/").endswith("/updates"):
        return None
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if isinstance(body, dict) and isinstance(body.get("from"), str):
        return body["from"]
    return None


class SignedApi:
    """An embedded Gridflow's IntakeApi whose requests carry the admin's token (or, for a
    status update, the sender's holder credential) unless the test gives credentials itself."""

    def __init__(self, gridflow: Any):
        self.gridflow = gridflow
        self.api = gridflow.api()
        self.holder_tokens: dict[str, str] = {}

    def holder_token(self, code: str) -> str:
        if code not in self.holder_tokens:
            _, token = self.gridflow.identities().issue(
                HOLDER_KEY, label=f"test {code}", holder=code
            )
            self.holder_tokens[code] = token
        return self.holder_tokens[code]

    def headers_for(self, path: str, body: Any, headers: Any) -> dict[str, str]:
        headers = dict(headers or {})
        if names_a_credential(headers):
            return headers
        sender = update_sender(path, body)
        token = self.holder_token(sender) if sender else self.gridflow.admin_token
        return {**headers, **bearer(token)}

    def handle(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ):
        return self.api.handle(method, path, body, self.headers_for(path, body, headers))

    def _signed(self, request: Request) -> Request:
        if names_a_credential(request.headers):
            return request
        environ = dict(request.environ)
        environ["HTTP_AUTHORIZATION"] = f"Bearer {self.gridflow.admin_token}"
        return Request(environ)

    def answer(self, request: Request):
        return self.api.answer(self._signed(request))

    def respond(self, request: Request):
        return self.api.respond(self._signed(request))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)
