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


# The columns an import file may have (the header row names them, in any order; others are
# refused so a misspelt column is not silently dropped). description, and one location form
# (lat+lon, grid_code or address), are what a report needs.
IMPORT_COLUMNS = (
    "external_id",
    "channel",
    "description",
    "category",
    "lat",
    "lon",
    "grid_code",
    "address",
    "observed_at",
    "reporter_name",
    "reporter_phone",
)


@dataclass(frozen=True)
class ImportRow:
    """One row of an import file, as read: its number in the file (the header is row 1) and
    its non-empty cells by column name, as text (numbers and instants already written out)."""

    number: int
    cells: dict[str, str]


def import_external_id(row: ImportRow) -> str:
    """The row's own external_id, or one derived from what the row says (``import-`` and 24 hex
    of the sha256 of its cells): importing the same file again, or a file with rows added or
    fixed, changes nothing for the rows already taken. Two rows saying exactly the same are
    one report."""
    given = row.cells.get("external_id", "").strip()
    if given:
        return given
    canonical = "\x1f".join(f"{k}={row.cells[k]}" for k in sorted(row.cells))
    return "import-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


def _number(text: str) -> float | str:
    """A coordinate as a JSON number when it reads as one; else the text, for the API to refuse
    naming the field (one validation: the API's)."""
    try:
        value = float(text)
    except ValueError:
        return text
    return value if value == value and abs(value) != float("inf") else text


def import_report(row: ImportRow, channel: str) -> dict:
    """The report a row asks for, shaped as ``POST /api/v1/reports/batch`` takes an item."""
    cells = row.cells
    report: dict = {
        "channel": cells.get("channel") or channel,
        "external_id": import_external_id(row),
        "description": cells.get("description", ""),
    }
    location: dict = {}
    for name in ("lat", "lon"):
        if name in cells:
            location[name] = _number(cells[name])
    for name in ("grid_code", "address"):
        if name in cells:
            location[name] = cells[name]
    report["location"] = location
    if "category" in cells:
        report["category"] = cells["category"]
    if "observed_at" in cells:
        report["observed_at"] = cells["observed_at"]
    reporter = {k: cells[f"reporter_{k}"] for k in ("name", "phone") if f"reporter_{k}" in cells}
    if reporter:
        report["reporter"] = reporter
    return report


def unknown_columns(header: list[str]) -> list[str]:
    return [name for name in header if name and name not in IMPORT_COLUMNS]


def photo_path(photo_id: str) -> str:
    """Where a photo is read, relative to Gridflow's base URL: what cases and department
    messages carry (a department's system reads it with its own credential)."""
    return f"/api/v1/photos/{photo_id}"


def observed_detail(report: dict) -> dict[str, str]:
    """``{"observed_at": ISO 8601}`` for a report that says when it was observed, else empty
    (for the registration's timeline entry and event)."""
    observed = report.get("observed_at")
    return {"observed_at": observed.isoformat()} if observed is not None else {}
