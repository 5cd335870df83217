"""Helpers for the tests of status back from department systems (issue 7)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from gridflow_common import signing
from gridflow_common.domain.jurisdiction import AdapterConfig, Jurisdiction
from gridflow_common.jurisdictions import JurisdictionStore


def with_adapters(j: Jurisdiction, configs: Iterable[AdapterConfig]) -> Jurisdiction:
    """``j`` carrying these adapters.csv rows, as the import makes it.

    Until the adapters' import (``Jurisdiction.adapters``/``adapter_for``) is merged, the rows
    are set on a copy as ``adapters``, which ``status_words.adapter_config`` reads; after, the
    jurisdiction's own field is replaced in the shape it has."""
    rows = tuple(configs)
    names = {f.name for f in dataclasses.fields(j)}
    if "adapters" in names:
        current = j.adapters  # type: ignore[attr-defined]
        value: Any = {r.code: r for r in rows} if isinstance(current, Mapping) else rows
        return dataclasses.replace(j, adapters=value)  # type: ignore[call-arg]
    copy = dataclasses.replace(j)
    object.__setattr__(copy, "adapters", rows)
    return copy


def give_adapters(store: JurisdictionStore, configs: Iterable[AdapterConfig]) -> None:
    """The jurisdiction in force, in this process, carries ``configs``."""
    version = store.active_version()
    store._cache[version] = with_adapters(store.get(version), configs)


def signed_headers(
    secret: str, body: bytes, *, at: float | None = None, key: str | None = None
) -> dict[str, str]:
    """The headers of a request signed as a department signs it."""
    timestamp = int(time.time() if at is None else at)
    headers = {
        "Content-Type": "application/json",
        signing.TIMESTAMP_HEADER: str(timestamp),
        signing.SIGNATURE_HEADER: signing.sign(secret, timestamp, body),
    }
    if key is not None:
        headers[signing.IDEMPOTENCY_HEADER] = key
    return headers


def encoded(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
