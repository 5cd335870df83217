"""The department adapter contract suite, as a pytest plugin any adapter package runs on itself::

    pytest -p gridflow_common.adapters.contract_suite --adapter=my_package.module:MyAdapter
    pytest -p gridflow_common.adapters.contract_suite --adapter=filedrop      # an installed name

``--adapter`` names the class (``module:Class``) or an installed adapter's entry-point name
(group ``gridflow.department_adapters``). A class that does not keep the contract, an import
that fails or a name that is not installed stops the run at once with a usage error saying
which (pytest's exit code 4): nothing is tested against an adapter the registry would refuse.

The suite drives the adapter against a *harness*: a double of the department's system that
the adapter package provides. ``--harness=module:factory`` names a zero-argument factory; by
default the suite looks for ``contract_harness`` in the adapter's module, then in
``<top-level package>.testing``. What a harness is: ``Harness`` below (docs/integrators.md).

With no test paths given the suite runs alone; given paths (``pytest tests/ -p ...``), it runs
after them. The tests themselves are in ``contract_tests.py`` beside this file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from gridflow_common.adapters import registry
from gridflow_common.adapters.contract import (
    AdapterConfig,
    AdapterContext,
    Delivery,
    DepartmentAdapter,
)

HARNESS_ATTRIBUTE = "contract_harness"
SUITE = Path(__file__).with_name("contract_tests.py")


class Harness(Protocol):
    """A double of a department's system that an adapter can reach, controlled by the suite.

    ``received()`` lists every push the double took, in order, duplicates included, each as
    ``{"delivery_id": ..., "idempotency_key": ..., "message": {...}}``: the message as the
    double read it (a mapping with at least ``case_id``), and the key the adapter passed on
    for the department system to drop copies with. ``go_down()`` makes the system unreachable
    (a refused connection, a missing share) until ``come_back()``; ``refuse_next()`` makes
    (at least) the next push answered with a permanent refusal. ``status_body`` is what the
    system sends back for ``take_status``; ``set_status`` changes the system's own record of a
    case, for adapters that poll (others may raise ``NotImplementedError``). An optional
    ``timeout_seconds`` attribute bounds how long a push to a system that is down may take
    (default ``DEFAULT_TIMEOUT_SECONDS``)."""

    def config(self) -> AdapterConfig: ...
    def context(self) -> AdapterContext: ...
    def received(self) -> list[dict[str, Any]]: ...
    def go_down(self) -> None: ...
    def come_back(self) -> None: ...
    def refuse_next(self) -> None: ...
    def status_body(self, delivery: Delivery, word: str, note: str | None) -> Mapping[str, Any]: ...
    def set_status(
        self, delivery: Delivery, external_ref: str | None, word: str, note: str | None
    ) -> None: ...
    def close(self) -> None: ...


DEFAULT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Target:
    """What the suite runs against: the adapter class and its harness factory."""

    spec: str
    adapter_class: type[DepartmentAdapter]
    harness_factory: Callable[[], Harness]
    harness_spec: str


def _import_attribute(spec: str, what: str) -> object:
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise registry.AdapterContractError(f"{what} {spec!r} is not module:name")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise registry.AdapterContractError(
            f"{what} {spec!r}: module {module_name} cannot be imported: {exc!r}"
        ) from None
    try:
        found: object = module
        for part in attribute.split("."):
            found = getattr(found, part)
    except AttributeError:
        raise registry.AdapterContractError(
            f"{what} {spec!r}: {module_name} has no {attribute}"
        ) from None
    return found


def load_adapter(spec: str) -> type[DepartmentAdapter]:
    """The class ``spec`` names (``module:Class``, or an installed adapter's name), checked
    against the contract exactly as the registry checks it; ``AdapterContractError`` else."""
    if ":" not in spec:
        return registry.load(spec)
    cls = _import_attribute(spec, "adapter")
    return registry.check_class(spec, cls)


def find_harness(cls: type, spec: str | None) -> tuple[Callable[[], Harness], str]:
    """The harness factory: ``spec`` (``module:factory``) when given, else ``contract_harness``
    in the adapter's module or in its top-level package's ``testing`` module."""
    if spec:
        factory = _import_attribute(spec, "harness")
        if not callable(factory):
            raise registry.AdapterContractError(f"harness {spec!r} is not callable")
        return factory, spec  # type: ignore[return-value]
    candidates = [cls.__module__, cls.__module__.split(".")[0] + ".testing"]
    for module_name in candidates:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that module does not exist: look at the next one
            raise
        factory = getattr(module, HARNESS_ATTRIBUTE, None)
        if callable(factory):
            return factory, f"{module_name}:{HARNESS_ATTRIBUTE}"
    raise registry.AdapterContractError(
        f"no harness for {cls.__module__}.{cls.__qualname__}: give --harness=module:factory, "
        f"or define {HARNESS_ATTRIBUTE} in " + " or ".join(candidates)
    )


_TARGET = pytest.StashKey[Target]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gridflow-adapter", "Gridflow department adapter contract suite")
    group.addoption(
        "--adapter",
        metavar="MODULE:CLASS|NAME",
        default=None,
        help="the adapter class to check (module:Class), or an installed adapter's name",
    )
    group.addoption(
        "--harness",
        metavar="MODULE:FACTORY",
        default=None,
        help=f"the harness factory (default: {HARNESS_ATTRIBUTE} in the adapter's module "
        "or in <package>.testing)",
    )


def pytest_configure(config: pytest.Config) -> None:
    spec = config.getoption("adapter")
    if not spec:
        return
    try:
        cls = load_adapter(spec)
        factory, harness_spec = find_harness(cls, config.getoption("harness"))
    except registry.AdapterContractError as exc:
        raise pytest.UsageError(f"--adapter={spec}: {exc}") from None
    config.stash[_TARGET] = Target(spec, cls, factory, harness_spec)
    suite = str(SUITE)
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        if suite not in config.args:
            config.args.append(suite)
    else:
        # No paths named: the suite alone, not whatever the folder happens to hold.
        config.args[:] = [suite]


def pytest_report_header(config: pytest.Config) -> list[str]:
    target = config.stash.get(_TARGET, None)
    if target is None:
        return []
    cls = target.adapter_class
    return [
        f"gridflow adapter contract suite: {cls.__module__}.{cls.__qualname__} "
        f"(name {getattr(cls, 'name', '?')!r}), harness {target.harness_spec}"
    ]


def target_of(config: pytest.Config) -> Target:
    target = config.stash.get(_TARGET, None)
    if target is None:
        raise pytest.UsageError(
            "the contract suite needs an adapter: "
            "pytest -p gridflow_common.adapters.contract_suite --adapter=module:Class"
        )
    return target
