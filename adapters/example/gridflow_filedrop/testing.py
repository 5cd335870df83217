"""The contract suite's harness for filedrop: a real folder, watched the way an office's script
watches it.

``received()`` must list every push, repeats included, but a repeated push overwrites the same
file, so the folder's contents alone cannot tell one push from two. The harness asks the kernel
instead (Linux inotify, through ctypes): each atomic write ends in a rename into the folder, and
the kernel queues one event per rename, in order, until the harness reads them. That is what an
office script built on ``inotifywait -m -e moved_to`` sees.

``go_down()`` moves the folder away (a share that is no longer mounted); ``refuse_next()`` puts
a plain file where the folder was (a misconfigured endpoint) until ``come_back()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

from gridflow_common.adapters import (
    AdapterConfig,
    AdapterContext,
    Delivery,
    SecretUnavailable,
)

_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name


class FolderWatch:
    """Every file renamed into one folder, in order, from the kernel's inotify queue."""

    def __init__(self, folder: Path):
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        # MOVED_FROM too: the kernel merges an event into an identical one still unread, so
        # two renames onto one name would count once; the temporary name between them (unique
        # per write) keeps them apart.
        mask = _IN_MOVED_FROM | _IN_MOVED_TO
        if libc.inotify_add_watch(self._fd, os.fsencode(folder), mask) < 0:
            os.close(self._fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")

    def names(self) -> list[str]:
        found: list[str] = []
        while True:
            try:
                chunk = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(chunk):
                _, mask, _, length = _EVENT.unpack_from(chunk, offset)
                offset += _EVENT.size
                name = chunk[offset : offset + length].rstrip(b"\0").decode()
                offset += length
                if mask & _IN_MOVED_TO:
                    found.append(name)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class FiledropHarness:
    timeout_seconds = 2.0

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="filedrop-"))
        self.folder = self.root / "drop"
        self.away = self.root / "unmounted"
        self.folder.mkdir()
        (self.folder / "status").mkdir()
        self._watch = FolderWatch(self.folder)
        self._received: list[dict[str, Any]] = []

    def config(self) -> AdapterConfig:
        return AdapterConfig(code="office-filedrop", adapter="filedrop", endpoint=str(self.folder))

    def context(self) -> AdapterContext:
        def no_secret(ref: str) -> str:
            raise SecretUnavailable(f"filedrop needs no secret ({ref})")

        def no_links(delivery: Delivery, action: str, expires_in: float) -> str:
            raise NotImplementedError("filedrop sends no links")

        return AdapterContext(
            secret=no_secret,
            sign_link=no_links,
            public_url="http://127.0.0.1:8000",
            now=lambda: dt.datetime.now(dt.timezone.utc),
        )

    def received(self) -> list[dict[str, Any]]:
        for name in self._watch.names():
            if name.startswith(".") or not name.endswith(".json"):
                continue  # the adapter's own temporary and probe files
            message = json.loads((self.folder / name).read_text(encoding="utf-8"))
            self._received.append(
                {
                    "delivery_id": message.get("delivery_id"),
                    "idempotency_key": name.removesuffix(".json"),
                    "message": message,
                }
            )
        return list(self._received)

    def go_down(self) -> None:
        self.received()  # what arrived before the outage is kept
        self.folder.rename(self.away)

    def refuse_next(self) -> None:
        self.go_down()
        self.folder.write_text("not a folder\n", encoding="utf-8")

    def come_back(self) -> None:
        if self.folder.is_file():
            self.folder.unlink()
        if self.away.exists():
            self.away.rename(self.folder)

    def status_body(self, delivery: Delivery, word: str, note: str | None) -> dict[str, Any]:
        return {
            "case_id": delivery.case_id,
            "delivery_id": delivery.delivery_id,
            "status": word,
            "note": note,
        }

    def set_status(
        self, delivery: Delivery, external_ref: str | None, word: str, note: str | None
    ) -> None:
        # Written as the office should: a temporary name, then a rename.
        final = self.folder / "status" / f"{delivery.delivery_id}.json"
        temporary = final.with_name(f".{final.name}.tmp")
        temporary.write_text(
            json.dumps({"status": word, "note": note}, ensure_ascii=False), encoding="utf-8"
        )
        os.replace(temporary, final)

    def close(self) -> None:
        self._watch.close()
        shutil.rmtree(self.root, ignore_errors=True)


def contract_harness() -> FiledropHarness:
    return FiledropHarness()
