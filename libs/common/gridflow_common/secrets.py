"""Secrets by reference: the city's data names where a department's secret is kept, never the
secret itself (adapters.csv, column credential_ref).

A reference is ``env:NAME`` (an environment variable of every service process) or
``file:/absolute/path`` (a file readable by them, such as a mounted Kubernetes or Docker
secret; surrounding whitespace is dropped). Nothing here logs or repeats a secret's value.
"""

from __future__ import annotations

import os
from pathlib import Path

from gridflow_common.adapters.contract import SecretUnavailable

# Checked at import of the city's data too, where only the standard library may be used.
from gridflow_common.domain.credentials import reference_problem

__all__ = ["SecretUnavailable", "reference_problem", "resolve"]


def resolve(ref: str) -> str:
    """The secret ``ref`` names; ``SecretUnavailable`` (naming the reference, not a value)
    when it names nothing here."""
    problem = reference_problem(ref)
    if problem:
        raise SecretUnavailable(problem)
    kind, _, rest = ref.partition(":")
    if kind == "env":
        value = os.environ.get(rest)
        if not value:
            raise SecretUnavailable(f"environment variable {rest} is not set")
        return value
    try:
        value = Path(rest).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretUnavailable(f"{rest} cannot be read ({exc.strerror})") from None
    if not value:
        raise SecretUnavailable(f"{rest} is empty")
    return value
