"""An in-test department adapter whose system is told, per unit, to take, fail or refuse what
it is pushed, recording every push in order (duplicates included). What cannot run here is a
department's own system; everything on Gridflow's side (worker, database, events) is real."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from gridflow_common.adapters import (
    Delivery,
    DepartmentAdapter,
    Health,
    OpenDelivery,
    PushFailed,
    PushRefused,
    PushResult,
    StatusReport,
    registry,
)

NAME = "scripted"


class DepartmentSystem:
    """The systems behind every unit served by the scripted adapter."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pushed: list[tuple[str, dict]] = []  # (unit, message)
        self.down: set[str] = set()
        self.refusing: set[str] = set()
        self.retry_after: float | None = None
        self.words: dict[str, str] = {}  # external_ref -> the system's status word
        self.polled: list[list[str]] = []

    def received(self, unit: str) -> list[str]:
        return [m["delivery_id"] for u, m in self.pushed if u == unit]

    def adapter_class(self, polls: bool = False) -> type[DepartmentAdapter]:
        system = self

        class ScriptedAdapter(DepartmentAdapter):
            name: ClassVar[str] = NAME
            needs_endpoint: ClassVar[bool] = False

            def push(self, delivery: Delivery) -> PushResult:
                with system.lock:
                    if delivery.unit in system.down:
                        raise PushFailed(f"{delivery.unit} unreachable", system.retry_after)
                    if delivery.unit in system.refusing:
                        raise PushRefused(f"{delivery.unit} answered 422")
                    system.pushed.append((delivery.unit, dict(delivery.message)))
                return PushResult(external_ref=f"ext-{delivery.case_id}")

            push_change = push

            def take_status(self, body: Mapping[str, Any]) -> StatusReport:
                return StatusReport(case_id=body["case_id"], unit=body["unit"], word=body["word"])

            def poll_status(self, open_deliveries: Sequence[OpenDelivery]) -> list[StatusReport]:
                system.polled.append([d.delivery_id for d in open_deliveries])
                return [
                    StatusReport(
                        case_id=d.case_id,
                        unit=d.unit,
                        word=system.words[d.external_ref],
                        delivery_id=d.delivery_id,
                    )
                    for d in open_deliveries
                    if d.external_ref in system.words
                    and system.words[d.external_ref] != d.last_word
                ]

            def health(self) -> Health:
                return Health(True)

        ScriptedAdapter.polls = polls
        return ScriptedAdapter

    def loader(self, polls: bool = False):
        cls = self.adapter_class(polls)
        real = registry.load

        def load(name: str) -> type[DepartmentAdapter]:
            return cls if name == NAME else real(name)

        return load


def installed(monkeypatch) -> DepartmentSystem:
    """A scripted system whose adapter counts as installed (install checks the registry)."""
    system = DepartmentSystem()
    monkeypatch.setattr(registry, "load", system.loader())
    return system
