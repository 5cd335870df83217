"""Helpers for the tests of status back from department systems (issue 7)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from collections.abc import Iterable
from typing import Any

from gridflow_app.folders import LUCHENG, jurisdiction_files
from gridflow_common import signing
from gridflow_common.domain.jurisdiction import AdapterConfig, Jurisdiction
from gridflow_common.jurisdictions import JurisdictionStore


def with_adapters(j: Jurisdiction, configs: Iterable[AdapterConfig]) -> Jurisdiction:
    """``j`` carrying these adapters.csv rows (for the domain's own tests, which need no store)."""
    return dataclasses.replace(j, adapters=tuple(configs))


def adapters_csv(configs: Iterable[AdapterConfig]) -> str:
    """The adapters.csv a clerk would write for ``configs``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("code", "adapter", "endpoint", "credential_ref", "status_map", "options"))
    for row in configs:
        writer.writerow(
            (
                row.code,
                row.adapter,
                row.endpoint or "",
                row.credential_ref or "",
                ";".join(f"{word}:{status}" for word, status in row.status_map.items()),
                json.dumps(dict(row.options), ensure_ascii=False) if row.options else "",
            )
        )
    return out.getvalue()


def install_adapters(store: JurisdictionStore, configs: Iterable[AdapterConfig]) -> int:
    """Lucheng with an adapters.csv of ``configs`` installed and in force, through the store's
    own import (parsed, checked against the installed adapters, stored): the version."""
    return store.install({**jurisdiction_files(LUCHENG), "adapters.csv": adapters_csv(configs)})


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
