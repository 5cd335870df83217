"""filedrop: each case as a JSON file in a folder a small office's script watches (投递文件夹).

The office has no system Gridflow can call, only a shared folder (often a mounted share) and a
script that picks up what appears there. Gridflow writes each delivery as
``<folder>/<delivery_id>.json`` (the ``DepartmentMessageV2`` itself, UTF-8 JSON), atomically: a
hidden temporary file in the same folder, flushed to disk, then renamed over the final name, so
the script never reads half a file. A repeated push writes the same name again: the office sees
one file per delivery however often it was pushed (the file name is the idempotency key).

The office answers by dropping ``<folder>/status/<delivery_id>.json`` holding
``{"status": "<its own word>", "note": "..."}`` (written the same way: temporary file, then
rename). Gridflow polls those files (``polls = True``) and reports a word only when it changed;
the city's status map turns the office's words into Gridflow's.

The folder is the adapters.csv ``endpoint`` (an absolute path). A path that exists but is not a
folder is a mistake in the city's data: ``PushRefused``, retrying cannot help. A folder that is
missing or cannot be written (the share is not mounted, the disk is full) is an outage:
``PushFailed``, retried on the schedule.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import stat
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from marshmallow import Schema, fields, validate

from gridflow_common.adapters import (
    Delivery,
    DepartmentAdapter,
    Health,
    OpenDelivery,
    PushFailed,
    PushRefused,
    PushResult,
    StatusReport,
)

log = logging.getLogger(__name__)

# A delivery id becomes a file name: nothing that could climb out of the folder or hide.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
# A status file larger than this is not one the office's script meant to write.
MAX_STATUS_BYTES = 64 * 1024


class FiledropOptions(Schema):
    """adapters.csv ``options`` for filedrop (unknown keys are refused at import)."""

    # Where, under the folder, the office drops its status files.
    status_folder = fields.String(
        load_default="status",
        validate=[validate.Length(1, 100), validate.Regexp(r"^[A-Za-z0-9_-]+$")],
    )
    # Flush each file to disk before it is renamed into place: a power cut then never leaves an
    # empty file under a delivery's name. Off only for a folder on a disk that does not care.
    fsync = fields.Boolean(load_default=True)


class FiledropAdapter(DepartmentAdapter):
    name: ClassVar[str] = "filedrop"
    config_schema: ClassVar[type[Schema]] = FiledropOptions
    needs_endpoint: ClassVar[bool] = True
    polls: ClassVar[bool] = True

    def __init__(self, config, context):
        super().__init__(config, context)
        options = FiledropOptions().load(dict(config.options))
        self.folder = Path(config.endpoint or "")
        self.status_folder = self.folder / options["status_folder"]
        self.fsync = options["fsync"]

    # ----------------------------------------------------------------------- pushes

    def push(self, delivery: Delivery) -> PushResult:
        return self._drop(delivery)

    def push_change(self, delivery: Delivery) -> PushResult:
        # A change is one more file, under its own delivery id; the message says what changed.
        return self._drop(delivery)

    def _drop(self, delivery: Delivery) -> PushResult:
        name = _file_name(delivery.delivery_id)
        self._check_folder()
        body = json.dumps(dict(delivery.message), ensure_ascii=False, indent=2).encode("utf-8")
        final = self.folder / name
        # Hidden (the office's script skips dot files) and unique (two writers never share it).
        temporary = self.folder / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(temporary, "wb") as out:
                out.write(body)
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(temporary, final)
        except OSError as exc:
            _remove_quietly(temporary)
            raise PushFailed(f"cannot write {final}: {exc.strerror or exc}") from None
        log.info(
            "filedrop wrote a delivery",
            extra={"delivery_id": delivery.delivery_id, "unit": delivery.unit, "file": str(final)},
        )
        return PushResult(detail=f"wrote {final.name}")

    def _check_folder(self) -> None:
        if not self.folder.is_absolute():
            raise PushRefused(f"the endpoint {self.folder} is not an absolute folder path")
        try:
            found = self.folder.stat()
        except FileNotFoundError:
            raise PushFailed(
                f"folder {self.folder} is missing (a share that is not mounted?)"
            ) from None
        except OSError as exc:
            raise PushFailed(f"folder {self.folder} cannot be reached: {exc.strerror}") from None
        if not stat.S_ISDIR(found.st_mode):
            raise PushRefused(f"{self.folder} is not a folder")

    # ----------------------------------------------------------------------- status back

    def take_status(self, body: Mapping[str, Any]) -> StatusReport:
        """A status file's content, when it names its case: ``{"case_id", "status", "note",
        "delivery_id"?, "unit"?}``."""
        problems = []
        case_id = body.get("case_id")
        if not isinstance(case_id, str) or not case_id:
            problems.append("case_id: must be a non-empty string")
        word, note, more = _status_fields(body)
        problems += more
        unit = body.get("unit", self.config.code)
        if not isinstance(unit, str) or not unit:
            problems.append("unit: must be a non-empty string")
        delivery_id = body.get("delivery_id")
        if delivery_id is not None and not isinstance(delivery_id, str):
            problems.append("delivery_id: must be a string")
        if problems:
            raise ValueError("; ".join(problems))
        return StatusReport(
            case_id=str(case_id),
            unit=str(unit),
            word=str(word),
            note=note,
            delivery_id=delivery_id,
        )

    def poll_status(self, open_deliveries: Sequence[OpenDelivery]) -> list[StatusReport]:
        if not self.folder.is_dir():
            raise PushFailed(f"folder {self.folder} is missing (a share that is not mounted?)")
        reports = []
        for opened in open_deliveries:
            report = self._read_status(opened)
            if report is not None and report.word != opened.last_word:
                reports.append(report)
        return reports

    def _read_status(self, opened: OpenDelivery) -> StatusReport | None:
        try:
            path = self.status_folder / _file_name(opened.delivery_id)
        except PushRefused:
            return None
        try:
            with open(path, "rb") as source:
                raw = source.read(MAX_STATUS_BYTES + 1)
            changed_at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
        except FileNotFoundError:
            return None  # the office has not answered yet
        except OSError as exc:
            log.warning(
                "filedrop cannot read a status file",
                extra={"file": str(path), "error": exc.strerror},
            )
            return None
        try:
            if len(raw) > MAX_STATUS_BYTES:
                raise ValueError(f"larger than {MAX_STATUS_BYTES} bytes")
            body = json.loads(raw.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
            word, note, problems = _status_fields(body)
            if problems:
                raise ValueError("; ".join(problems))
        except ValueError as exc:
            # Kept for the office to fix and logged; the case stays where it is, never guessed.
            log.warning(
                "filedrop status file is not readable",
                extra={"file": str(path), "delivery_id": opened.delivery_id, "error": str(exc)},
            )
            return None
        return StatusReport(
            case_id=opened.case_id,
            unit=opened.unit,
            word=str(word),
            note=note,
            assignment_id=opened.assignment_id,
            delivery_id=opened.delivery_id,
            external_ref=opened.external_ref,
            occurred_at=changed_at,
        )

    # ----------------------------------------------------------------------- health

    def health(self) -> Health:
        """Whether a file can be written in the folder now: one probe file, written and removed."""
        probe = self.folder / f".gridflow-health.{uuid.uuid4().hex}"
        try:
            if not self.folder.is_dir():
                return Health(False, f"{self.folder} is missing or not a folder")
            with open(probe, "wb") as out:
                out.write(b"ok")
            probe.unlink()
        except OSError as exc:
            _remove_quietly(probe)
            return Health(False, f"cannot write in {self.folder}: {exc.strerror or exc}")
        return Health(True, f"{self.folder} is writable")


def _file_name(delivery_id: str) -> str:
    if not _SAFE_NAME.match(delivery_id) or ".." in delivery_id:
        raise PushRefused(f"delivery id {delivery_id!r} cannot be a file name")
    return f"{delivery_id}.json"


def _status_fields(body: Mapping[str, Any]) -> tuple[str | None, str | None, list[str]]:
    problems = []
    word = body.get("status")
    if not isinstance(word, str) or not word.strip():
        problems.append("status: must be the office's status word (a non-empty string)")
        word = None
    elif len(word) > 60:
        problems.append("status: longer than 60 characters")
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        problems.append("note: must be a string or null")
        note = None
    elif isinstance(note, str) and len(note) > 2000:
        problems.append("note: longer than 2000 characters")
    return (word.strip() if word else None), note, problems


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
