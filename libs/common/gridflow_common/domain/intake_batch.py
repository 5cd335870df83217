"""What a batch of reports, an observed instant and an uploaded photo must be, free of any
framework (standard library only; time is passed in).

A grid worker's phone (网格员 app) queues reports while offline and sends them later, maybe twice:
each report keeps the instant it was observed (``observed_at``) apart from the instant it reached
Gridflow (``received_at``). The case is registered (立案) when the report arrives, because the
city could not act on it before; the report, the case and its timeline keep the observed instant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

# A day offline on a busy patrol is tens of reports; a hundred is the most one request carries
# (at the 2,000-character description limit, about 700 KB of JSON).
MAX_BATCH_ITEMS = 100
MAX_BATCH_BODY_BYTES = 1024 * 1024
# A phone's clock may run a little ahead of the city's; more than this is a wrong clock.
OBSERVED_FUTURE_SKEW = dt.timedelta(minutes=5)
# A report observed longer ago than this is history, not a case to dispatch: the phone was
# offline for a month, or its clock is wrong.
OBSERVED_MAX_AGE = dt.timedelta(days=30)

# At most this many photos per report, each at most this large.
MAX_PHOTOS_PER_REPORT = 5
MAX_PHOTO_BYTES = 8 * 1024 * 1024
# A photo of more pixels than this is refused before it is decoded (a decompression bomb: a
# small PNG can declare 100,000 x 100,000 pixels).
MAX_PHOTO_PIXELS = 50_000_000

JPEG, PNG, WEBP = "image/jpeg", "image/png", "image/webp"
PHOTO_TYPES = (JPEG, PNG, WEBP)


def observed_problems(observed_at: dt.datetime | None, now: dt.datetime) -> list[str]:
    """Why ``observed_at`` cannot be taken at ``now`` (empty when it can, or when absent)."""
    if observed_at is None:
        return []
    if observed_at.tzinfo is None:
        return ["give the instant with its offset (e.g. 2026-11-26T09:30:00+08:00)"]
    if observed_at > now + OBSERVED_FUTURE_SKEW:
        return [
            f"{observed_at.isoformat()} is in the future (more than "
            f"{int(OBSERVED_FUTURE_SKEW.total_seconds() // 60)} minutes ahead of Gridflow's clock)"
        ]
    if observed_at < now - OBSERVED_MAX_AGE:
        return [
            f"{observed_at.isoformat()} is more than {OBSERVED_MAX_AGE.days} days ago; "
            "older observations are not registered as cases"
        ]
    return []


def sniff_image(head: bytes) -> str | None:
    """The image type the first bytes announce (magic numbers of JPEG, PNG, WebP), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    return None


def content_address(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ImportRow:
    """One row of an import file, as read: its 1-based number (the header is row 1) and its
    cells by column name."""

    number: int
    cells: dict[str, str]


def import_external_id(file_digest: str, row: ImportRow) -> str:
    """The row's own external_id, or one derived from the file's content and the row's number
    (``import-<12 hex>-<row>``), so importing the same file again changes nothing."""
    given = (row.cells.get("external_id") or "").strip()
    if given:
        return given
    return f"import-{file_digest[:12]}-{row.number}"


def photo_path(photo_id: str) -> str:
    """Where a photo is read, relative to Gridflow's base URL: what cases and department
    messages carry (a department's system reads it with its own credential)."""
    return f"/api/v1/photos/{photo_id}"


def observed_detail(report: dict) -> dict[str, str]:
    """``{"observed_at": ISO 8601}`` for a report that says when it was observed, else empty
    (for the registration's timeline entry and event)."""
    observed = report.get("observed_at")
    return {"observed_at": observed.isoformat()} if observed is not None else {}
