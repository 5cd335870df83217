"""Plugins by name from a Python entry-point group, refused loudly when they break their
contract (an abstract base class and a marshmallow ``config_schema``).

Department adapters (``gridflow.department_adapters``) and notification channels
(``gridflow.notify_channels``) are both found here: one loader, one set of refusals.
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

from marshmallow import Schema


class PluginContractError(TypeError):
    """A plugin that cannot be used: not installed, not importable, or not keeping the
    contract."""


def installed(group: str) -> dict[str, str]:
    """Plugin name -> the ``module:Class`` it points at, for every plugin of ``group``."""
    return {ep.name: ep.value for ep in entry_points(group=group)}


def check_class(
    name: str,
    cls: object,
    base: type,
    *,
    what: str,
    error: type[Exception] = PluginContractError,
    base_name: str | None = None,
) -> type:
    """``cls`` if it subclasses ``base``, implements every abstract method and names a
    marshmallow ``config_schema``; else ``error`` saying how it does not."""
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        named = base_name or f"{base.__module__}.{base.__qualname__}"
        raise error(f"{what} {name!r} ({cls!r}) does not subclass {named}")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise error(
            f"{what} {name!r} ({cls.__module__}.{cls.__qualname__}) does not implement "
            + ", ".join(missing)
        )
    schema = getattr(cls, "config_schema", None)
    if not (inspect.isclass(schema) and issubclass(schema, Schema)):
        raise error(f"{what} {name!r}: config_schema must be a marshmallow Schema class")
    return cls


def load(
    group: str,
    name: str,
    base: type,
    *,
    what: str,
    error: type[Exception] = PluginContractError,
    base_name: str | None = None,
) -> type:
    """The class installed under ``name`` in ``group``, checked against ``base``."""
    found = [ep for ep in entry_points(group=group) if ep.name == name]
    if not found:
        known = ", ".join(sorted(installed(group))) or "none"
        raise error(
            f"no {what} {name!r} is installed (entry-point group {group}; installed: {known})"
        )
    if len(found) > 1:
        raise error(f"{what} {name!r} is installed twice: " + ", ".join(ep.value for ep in found))
    try:
        cls = found[0].load()
    except Exception as exc:
        raise error(f"{what} {name!r} ({found[0].value}) cannot be imported: {exc!r}") from None
    return check_class(name, cls, base, what=what, error=error, base_name=base_name)
