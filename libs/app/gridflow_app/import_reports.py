"""``gridflow import-reports FILE``: reports from another department's CSV or Excel (.xlsx) file,
sent through a running Gridflow's batch API (``POST /api/v1/reports/batch``) so they are
validated exactly as the API validates every report.

The header row names the columns (``IMPORT_COLUMNS`` in gridflow_common.domain.intake_batch);
each following row is one report. A row without ``external_id`` gets one derived from what it
says, so importing the same file again changes nothing. A progress bar goes to stderr; each
row's result is written beside the file, ``FILE.results.csv`` (row, outcome, case_id, errors).
Exit status: 0 every row taken, 1 some rows refused, 2 the file or Gridflow refused the import.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from gridflow_common.domain import intake_batch as ib

# One request per this many rows: the batch API's own limit.
CHUNK = ib.MAX_BATCH_ITEMS
RESULT_COLUMNS = ("row", "outcome", "case_id", "errors")


class ImportRefused(Exception):
    """The file cannot be imported at all (unreadable, unknown columns, Gridflow refused)."""


def _text(value: Any, zone: ZoneInfo) -> str:
    """A cell as text: a number without a spurious ``.0``; an Excel date-time (naive) in the
    city's zone, with its offset, as the API takes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=zone)
        return aware.isoformat()
    return str(value).strip()


def _rows_of(table: Iterator[list[Any]], zone: ZoneInfo) -> Iterator[ib.ImportRow]:
    try:
        header = [_text(cell, zone).lower() for cell in next(table)]
    except StopIteration:
        raise ImportRefused("the file is empty: the first row names the columns") from None
    unknown = ib.unknown_columns(header)
    if unknown:
        raise ImportRefused(
            f"unknown columns {', '.join(map(repr, unknown))}; "
            f"the columns are {', '.join(ib.IMPORT_COLUMNS)}"
        )
    if "description" not in header:
        raise ImportRefused("the header row has no 'description' column")
    for number, values in enumerate(table, start=2):
        cells = {}
        for name, value in zip(header, values, strict=False):
            text = _text(value, zone)
            if name and text:
                cells[name] = text
        if cells:
            yield ib.ImportRow(number, cells)


def read_rows(path: Path, zone: ZoneInfo) -> list[ib.ImportRow]:
    """The file's rows (blank ones skipped): .xlsx by openpyxl (its first sheet), anything else
    as UTF-8 CSV (a byte-order mark, as Excel writes it, is taken)."""
    try:
        if path.suffix.lower() == ".xlsx":
            from openpyxl import load_workbook

            book = load_workbook(path, read_only=True, data_only=True)
            try:
                sheet = book.worksheets[0]
                return list(_rows_of((list(r) for r in sheet.iter_rows(values_only=True)), zone))
            finally:
                book.close()
        with open(path, encoding="utf-8-sig", newline="") as handle:
            return list(_rows_of(iter(csv.reader(handle)), zone))
    except ImportRefused:
        raise
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"{path} is not UTF-8 text: {exc}") from None
    except (OSError, csv.Error, ValueError, KeyError) as exc:
        # openpyxl raises these (and zipfile's BadZipFile, a ValueError-free Exception) on a
        # file that is not a workbook.
        raise ImportRefused(f"{path} cannot be read: {exc}") from None
    except Exception as exc:
        if type(exc).__name__ in ("BadZipFile", "InvalidFileException"):
            raise ImportRefused(f"{path} is not an .xlsx workbook: {exc}") from None
        raise


class Progress:
    """A plain-text progress bar on a stream: redrawn in place on a terminal, a line every
    tenth otherwise (a log file gets eleven lines, not thousands)."""

    def __init__(self, total: int, stream: IO[str], width: int = 30):
        self.total, self.stream, self.width = total, stream, width
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last_tenth = -1

    def show(self, done: int) -> None:
        fraction = done / self.total if self.total else 1.0
        filled = int(self.width * fraction)
        rate = done / max(time.monotonic() - self.started, 1e-6)
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} rows "
            f"{fraction:4.0%} {rate:.0f} rows/s"
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done >= self.total else ""))
            self.stream.flush()
            return
        tenth = int(fraction * 10)
        if tenth != self.last_tenth:
            self.last_tenth = tenth
            self.stream.write(line + "\n")
            self.stream.flush()


def _errors_text(errors: dict[str, list[str]], index: int) -> str:
    prefix = f"items.{index}"
    parts: list[str] = []
    for name, messages in errors.items():
        field = name[len(prefix) + 1 :] if name.startswith(prefix + ".") else name
        field = field if name != prefix else "row"
        parts.extend(f"{field}: {m}" for m in messages)
    return "; ".join(parts)


def results_path(path: Path) -> Path:
    return path.with_name(path.name + ".results.csv")


def run(
    path: Path,
    client: Any,
    *,
    channel: str = "import",
    zone: str = "Asia/Shanghai",
    progress: IO[str] | None = None,
) -> dict[str, int]:
    """Import ``path`` through ``client`` (an httpx.Client on Gridflow's base URL with the
    credential); the outcome counts. Raises ImportRefused when nothing could be imported."""
    import httpx

    rows = read_rows(path, ZoneInfo(zone))
    bar = Progress(len(rows), progress or sys.stderr)
    bar.show(0)
    counts: dict[str, int] = {}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(RESULT_COLUMNS)
    done = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        items = [ib.import_report(row, channel) for row in chunk]
        try:
            response = client.post("/api/v1/reports/batch", json={"items": items})
        except httpx.HTTPError as exc:
            raise ImportRefused(f"cannot reach Gridflow: {exc}") from None
        if response.status_code != 200:
            raise ImportRefused(
                f"Gridflow refused the batch of rows {chunk[0].number}-{chunk[-1].number} "
                f"({response.status_code}): {response.text[:500]}"
            )
        for row, result in zip(chunk, response.json()["results"], strict=True):
            outcome = result["outcome"]
            counts[outcome] = counts.get(outcome, 0) + 1
            writer.writerow(
                [
                    row.number,
                    outcome,
                    result.get("case_id") or "",
                    _errors_text(result.get("errors") or {}, result["index"]),
                ]
            )
        done += len(chunk)
        bar.show(done)
        # Written after every batch: an import stopped halfway leaves the rows it did say.
        results_path(path).write_text(out.getvalue(), encoding="utf-8")
    results_path(path).write_text(out.getvalue(), encoding="utf-8")
    return counts


def main(args: Any) -> int:
    import httpx

    from gridflow_app.cli import admin_headers, default_url

    path = Path(args.file)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else admin_headers()
    if not headers:
        print(
            "no credential: give --token (a channel key or a user's token) or run where "
            "the admin token is (GRIDFLOW_ADMIN_TOKEN)",
            file=sys.stderr,
        )
        return 2
    with httpx.Client(
        base_url=(args.url or default_url()).rstrip("/"), headers=headers, timeout=60
    ) as client:
        try:
            counts = run(path, client, channel=args.channel, zone=args.time_zone)
        except ImportRefused as exc:
            print(f"import refused: {exc}", file=sys.stderr)
            return 2
    summary = ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "no rows"
    print(f"{path}: {summary}; results in {results_path(path)}")
    return 1 if counts.get("refused") else 0
