"""Jurisdiction folders on disk, kept apart from the wiring so the HTTP clients (replay, import)
read them without importing every service."""

from __future__ import annotations

from pathlib import Path

import gridflow_common

# The jurisdiction shipped with Gridflow: the embedded default and an empty `make up` load it.
LUCHENG = Path(gridflow_common.__file__).parent / "fixtures" / "lucheng"


def jurisdiction_files(folder: Path = LUCHENG) -> dict[str, str]:
    """A jurisdiction folder as the admin API takes it: each CSV file's name and text."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.csv"))}
