"""Placeholder until the rate limiter lands (wip/ratelimit)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: float


def parse_limit(text: str) -> Limit:
    m = re.match(r"^(\d+)/(\d*)(s|min|h)$", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a rate like 30/min")
    return Limit(int(m.group(1)), int(m.group(2) or 1) * {"s": 1, "min": 60, "h": 3600}[m.group(3)])
