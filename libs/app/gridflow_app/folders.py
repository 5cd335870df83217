"""Jurisdiction folders on disk, kept apart from the wiring so the HTTP clients (replay, import)
read them without importing every service."""

from __future__ import annotations

import os
from pathlib import Path

import gridflow_common

# The jurisdiction shipped with Gridflow: the embedded default and an empty `make up` load it.
LUCHENG = Path(gridflow_common.__file__).parent / "fixtures" / "lucheng"


def jurisdiction_files(folder: Path = LUCHENG) -> dict[str, str]:
    """A jurisdiction folder as the admin API takes it: each CSV file's name and text, and
    the city's rules.yaml when it has one."""
    paths = [*sorted(folder.glob("*.csv")), *sorted(folder.glob("rules.yaml"))]
    return {p.name: p.read_text(encoding="utf-8") for p in paths}


# -- the admin's token ---------------------------------------------------------------------------
# The embedded default (and `gridflow admin-token` on a real deployment) writes a long-lived
# admin token to `.gridflow/admin-token` in the checkout, readable by its owner alone; `gridflow
# replay` and the other commands read it from there, or take GRIDFLOW_ADMIN_TOKEN first.
ADMIN_TOKEN_ENV = "GRIDFLOW_ADMIN_TOKEN"
ADMIN_TOKEN_FILE_ENV = "GRIDFLOW_ADMIN_TOKEN_FILE"


def checkout_root() -> Path:
    """The checkout Gridflow runs from (an editable install's source tree), else the current
    folder."""
    here = Path(__file__).resolve().parents[2]
    if (here / "Makefile").is_file() and (here / "libs").is_dir():
        return here
    return Path.cwd()


def admin_token_path() -> Path:
    named = os.environ.get(ADMIN_TOKEN_FILE_ENV)
    return Path(named) if named else checkout_root() / ".gridflow" / "admin-token"


def read_admin_token() -> str | None:
    """GRIDFLOW_ADMIN_TOKEN, else the token file's content, else None."""
    token = (os.environ.get(ADMIN_TOKEN_ENV) or "").strip()
    if token:
        return token
    try:
        return admin_token_path().read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def write_admin_token(token: str) -> Path:
    """Write the token file with mode 0600 in a folder of mode 0700, replacing it whole (a
    reader never sees half a token)."""
    path = admin_token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    os.replace(partial, path)
    return path
