"""Finding department adapters: the entry-point group ``gridflow.department_adapters``.

An adapter is loaded by its name in the city's data. One that is not installed, cannot be
imported, or does not keep the contract (a subclass of ``DepartmentAdapter`` with every abstract
method implemented and a ``config_schema``) is refused loudly, naming what is wrong, at import
of the city's data and again when the departments service starts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from marshmallow import ValidationError

from gridflow_common import plugins
from gridflow_common.adapters.contract import DepartmentAdapter

# What serves a department or unit the city's data names no adapter for (defined with the
# jurisdiction, whose adapter_for falls back to it).
from gridflow_common.domain.jurisdiction import DEFAULT_ADAPTER, AdapterConfig

ENTRY_POINT_GROUP = "gridflow.department_adapters"
_BASE = "gridflow_common.adapters.DepartmentAdapter"
__all__ = ["DEFAULT_ADAPTER", "ENTRY_POINT_GROUP", "AdapterContractError", "config_problems"]


class AdapterContractError(TypeError):
    """An adapter that cannot be used: not installed, not importable, or not keeping the
    contract."""


def installed() -> dict[str, str]:
    """Adapter name -> the ``module:Class`` it points at, for every installed adapter."""
    return plugins.installed(ENTRY_POINT_GROUP)


def check_class(name: str, cls: object) -> type[DepartmentAdapter]:
    """``cls`` if it keeps the contract, else ``AdapterContractError`` saying how it does not."""
    return plugins.check_class(
        name, cls, DepartmentAdapter, what="adapter", error=AdapterContractError, base_name=_BASE
    )


def load(name: str) -> type[DepartmentAdapter]:
    """The adapter class installed under ``name``."""
    return plugins.load(
        ENTRY_POINT_GROUP,
        name,
        DepartmentAdapter,
        what="adapter",
        error=AdapterContractError,
        base_name=_BASE,
    )


def config_problems(config: AdapterConfig) -> list[tuple[str | None, str]]:
    """What is wrong with one adapters.csv row, as (column, message): the adapter is not
    installed or breaks the contract, it needs an endpoint it was not given or one that is not
    a URL of its ``endpoint_schemes``, it needs a credential reference it was not given, or its
    options fail its config schema. Empty when the row can be used."""
    try:
        cls = load(config.adapter)
    except AdapterContractError as exc:
        return [("adapter", str(exc))]
    problems: list[tuple[str | None, str]] = []
    if cls.needs_endpoint and not config.endpoint:
        problems.append(("endpoint", f"adapter {config.adapter!r} needs an endpoint"))
    elif config.endpoint:
        problem = (
            _url_problem(config.endpoint, cls.endpoint_schemes) if cls.endpoint_schemes else None
        ) or cls.endpoint_problem(config.endpoint)
        if problem:
            problems.append(("endpoint", f"adapter {config.adapter!r}: {problem}"))
    if cls.needs_credential and not config.credential_ref:
        problems.append(
            ("credential_ref", f"adapter {config.adapter!r} needs a credential reference")
        )
    try:
        cls.config_schema().load(dict(config.options))
    except ValidationError as exc:
        for key, messages in _flatten(exc.messages):
            problems.append(("options", f"{key}: {'; '.join(messages)}"))
    return problems


def _flatten(messages: object, prefix: str = "") -> list[tuple[str, list[str]]]:
    if isinstance(messages, dict):
        out: list[tuple[str, list[str]]] = []
        for key, value in messages.items():
            out.extend(_flatten(value, f"{prefix}{key}." if key != "_schema" else prefix))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(prefix.rstrip(".") or "options", list(messages))]
    return [(prefix.rstrip(".") or "options", [str(messages)])]


def _url_problem(url: str, schemes: tuple[str, ...]) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"the endpoint is not a URL ({exc})"
    if parts.scheme not in schemes:
        return f"the endpoint must be a {' or '.join(schemes)} URL"
    if not parts.hostname:
        return "the endpoint names no host"
    if parts.username is not None or parts.password is not None:
        # The row is the city's data, read by many; a secret belongs behind credential_ref.
        return "the endpoint must not carry a user or password: use credential_ref"
    return None
