"""The department side of the broker: the topic exchange of cases and the durable queues of the
units that exist (``contracts.CASE_EXCHANGE``).

A unit's queue (``gridflow.unit.<unit>``) is bound with the unit's routing key
(``<department>.<unit>``); its department's queue (``gridflow.department.<department>``) with
``<department>.*``, so a bureau reads every one of its stations' cases. Both are declared before
anything is published there: a message published before any queue is bound is confirmed by the
broker and then discarded.
"""

from __future__ import annotations

from typing import Any

import kombu

from gridflow_common import contracts as c
from gridflow_common.domain.jurisdiction import DEFAULT_ADAPTER, Jurisdiction

CASE_EXCHANGE = kombu.Exchange(c.CASE_EXCHANGE, type="topic", durable=True)


def owner_of(routing_key: str) -> tuple[str, str]:
    """(owner, unit) of a routing key ``<owner>.<unit>`` (codes hold no dots: the jurisdiction
    refuses them)."""
    owner, _, unit = routing_key.partition(".")
    return owner, unit or owner


def declare_unit(channel: Any, department: str | None, unit: str) -> None:
    """The exchange, the unit's queue and its owner's queue, bound; idempotent."""
    owner = department or unit
    CASE_EXCHANGE.declare(channel=channel)
    kombu.Queue(
        c.unit_queue(unit),
        exchange=CASE_EXCHANGE,
        routing_key=c.unit_routing_key(department, unit),
        durable=True,
        auto_delete=False,
    ).declare(channel=channel)
    kombu.Queue(
        c.department_queue(owner),
        exchange=CASE_EXCHANGE,
        routing_key=f"{owner}.*",
        durable=True,
        auto_delete=False,
    ).declare(channel=channel)


def amqp_units(jurisdiction: Jurisdiction) -> list[tuple[str | None, str]]:
    """(department, unit) of every unit the city serves over AMQP on Gridflow's broker (a row
    with an endpoint names a broker of the department's own)."""
    served = []
    for unit in jurisdiction.units:
        config = jurisdiction.adapter_for(unit.code)
        if config.adapter == DEFAULT_ADAPTER and not config.endpoint:
            served.append((unit.department_code, unit.code))
    return served


def declare_unit_queues(channel: Any, jurisdiction: Jurisdiction) -> int:
    """Declare the queues of every unit ``jurisdiction`` serves over AMQP (the departments
    service does at start, so a department system that connects before its first case finds
    its queue); how many units."""
    units = amqp_units(jurisdiction)
    CASE_EXCHANGE.declare(channel=channel)
    for department, unit in units:
        declare_unit(channel, department, unit)
    return len(units)
