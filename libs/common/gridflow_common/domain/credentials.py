"""Credential references (adapters.csv, column credential_ref): the city's data names where a
department's secret is kept, never the secret itself. Checked when the jurisdiction is read, so
this stays standard library only; resolving a reference is ``gridflow_common.secrets``."""

from __future__ import annotations

import re

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def reference_problem(ref: str) -> str | None:
    """Why ``ref`` is not a well-formed reference (None when it is)."""
    kind, _, rest = ref.partition(":")
    if kind == "env":
        if not _ENV_NAME.match(rest):
            return f"env:{rest} is not an environment variable name"
        return None
    if kind == "file":
        if not rest.startswith("/"):
            return "file: needs an absolute path (file:/run/secrets/fire-webhook)"
        return None
    return "a credential reference is env:NAME or file:/path, never the secret itself"
