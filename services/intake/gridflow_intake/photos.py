"""Photos (照片) of reports: checked to be what they claim, kept in a folder by their sha256, and
attached to the case a report registers or joins.

The folder: ``PHOTOS_DIR`` in intake's YAML config (``${GRIDFLOW_PHOTOS_DIR:...}``) in the real
topology; in the embedded default, ``photos/`` beside its SQLite file; the environment variable
``GRIDFLOW_PHOTOS_DIR`` wins over both. Content-addressed: the same bytes uploaded twice are one
file (two rows, each its uploader's), a file is written whole (temporary name, then renamed) and
never changed, so a refused or rolled-back upload leaves at most a file no row names, which the
next upload of those bytes takes over.
"""

from __future__ import annotations

import io
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from nameko.extensions import DependencyProvider
from PIL import Image, UnidentifiedImageError

from gridflow_common.domain import intake_batch as ib
from gridflow_common.runtime import Work
from gridflow_intake.handlers import Rejected
from gridflow_intake.models import photos, reports

PHOTOS_DIR = "PHOTOS_DIR"
PHOTOS_DIR_ENV = "GRIDFLOW_PHOTOS_DIR"
_STORE = "photo_store"
# Pillow's format names for the types taken.
_PIL_FORMATS = {ib.JPEG: "JPEG", ib.PNG: "PNG", ib.WEBP: "WEBP"}


class PhotoStore:
    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)

    def path(self, sha256: str) -> Path:
        # Two levels of fan-out keep a folder of a million photos listable.
        return self.folder / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        digest = ib.content_address(data)
        target = self.path(digest)
        if target.exists():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{digest}.{secrets.token_hex(4)}.part")
        with open(partial, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
        return digest

    def get(self, sha256: str) -> bytes | None:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            return None


def store_for(runtime: Any) -> PhotoStore:
    """The process's photo store: the environment, else the service config, else beside the
    SQLite file (embedded default), else ./gridflow-photos."""
    store = runtime.extras.get(_STORE)
    if store is None:
        folder = os.environ.get(PHOTOS_DIR_ENV) or runtime.extras.get(PHOTOS_DIR)
        if not folder:
            database = runtime.engine.url.database
            if runtime.engine.dialect.name == "sqlite" and database:
                folder = str(Path(database).parent / "photos")
            else:
                folder = "gridflow-photos"
        store = runtime.extras.setdefault(_STORE, PhotoStore(folder))
    return store


def check_image(data: bytes, declared: str | None) -> tuple[str, int, int]:
    """(content type, width, height) of an upload that really is a JPEG, PNG or WebP image of
    the type it declares; else a Rejected naming the problem."""
    if not data:
        raise Rejected(400, {"_body": ["the body is empty; send the image's bytes"]})
    if declared not in ib.PHOTO_TYPES:
        said = f"{declared!r} is not taken" if declared else "no Content-Type was given"
        raise Rejected(415, {"content_type": [f"{said}; send one of {', '.join(ib.PHOTO_TYPES)}"]})
    sniffed = ib.sniff_image(data[:16])
    if sniffed is None:
        raise Rejected(
            422, {"_body": [f"the body is not a JPEG, PNG or WebP image (it claims {declared})"]}
        )
    if sniffed != declared:
        raise Rejected(422, {"_body": [f"the body is a {sniffed} image, not {declared}"]})
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, on a decompression bomb: either way it is refused.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[sniffed]]) as image:
                width, height = image.size
                if width * height > ib.MAX_PHOTO_PIXELS:
                    raise Rejected(
                        422,
                        {
                            "_body": [
                                f"the image is {width}x{height} pixels; at most "
                                f"{ib.MAX_PHOTO_PIXELS} pixels are taken"
                            ]
                        },
                    )
                # Decoding every pixel finds a truncated or corrupt image that the header alone
                # would pass.
                image.load()
    except Rejected:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise Rejected(
            422, {"_body": [f"the {sniffed} image is damaged or truncated: {exc}"]}
        ) from None
    return sniffed, width, height


def save(
    work: Work,
    store: PhotoStore,
    data: bytes,
    content_type: str,
    size: tuple[int, int],
    uploaded_by: str,
) -> dict:
    """Keep an image checked by ``check_image``; its row is written in ``work``."""
    digest = store.put(data)
    photo_id = "ph-" + secrets.token_hex(12)
    work.db.execute(
        sa.insert(photos),
        dict(
            photo_id=photo_id,
            sha256=digest,
            content_type=content_type,
            size=len(data),
            width=size[0],
            height=size[1],
            uploaded_by=uploaded_by,
            uploaded_at=work.now,
            case_id=None,
            report_id=None,
        ),
    )
    return describe(photo_id, content_type, len(data), size, digest)


def describe(
    photo_id: str, content_type: str, size: int, dimensions: tuple[int, int], digest: str
) -> dict:
    return {
        "photo_id": photo_id,
        "url": ib.photo_path(photo_id),
        "content_type": content_type,
        "size": size,
        "width": dimensions[0],
        "height": dimensions[1],
        "sha256": digest,
    }


def row(work: Work, photo_id: str) -> Any:
    return work.db.execute(sa.select(photos).where(photos.c.photo_id == photo_id)).first()


def photo_problems(work: Work, photo_ids: list[str], credential_id: str | None) -> dict:
    """Field -> why, for each photo a report names that it may not carry: unknown, not
    uploaded with the reporting credential, or already another case's."""
    problems: dict[str, list[str]] = {}
    if not photo_ids:
        return problems
    found = {
        r.photo_id: r
        for r in work.db.execute(
            sa.select(photos.c.photo_id, photos.c.uploaded_by, photos.c.case_id).where(
                photos.c.photo_id.in_(photo_ids)
            )
        )
    }
    seen: set[str] = set()
    for index, photo_id in enumerate(photo_ids):
        name = f"photos.{index}"
        r = found.get(photo_id)
        # Another credential's photo is as unknown as one that does not exist: its id says
        # nothing to whoever guesses it.
        if r is None or credential_id is None or r.uploaded_by != credential_id:
            problems[name] = [f"no photo {photo_id!r} uploaded with this credential"]
        elif r.case_id is not None:
            problems[name] = [f"photo {photo_id!r} already belongs to case {r.case_id}"]
        elif photo_id in seen:
            problems[name] = [f"photo {photo_id!r} is named twice"]
        seen.add(photo_id)
    return problems


def attach(work: Work, photo_ids: list[str], case_id: str) -> None:
    """The photos of a report taken for ``case_id`` (registered or joined), in its unit of
    work; only photos still unattached (``photo_problems`` checked them in this unit)."""
    if not photo_ids:
        return
    report_id = work.db.execute(
        sa.select(sa.func.max(reports.c.id)).where(reports.c.case_id == case_id)
    ).scalar()
    work.db.execute(
        sa.update(photos)
        .where(photos.c.photo_id.in_(photo_ids), photos.c.case_id.is_(None))
        .values(case_id=case_id, report_id=report_id)
    )


def of_case(work: Work, case_id: str) -> list[dict]:
    rows = work.db.execute(
        sa.select(photos)
        .where(photos.c.case_id == case_id)
        .order_by(photos.c.uploaded_at, photos.c.photo_id)
    ).all()
    return [
        describe(r.photo_id, r.content_type, r.size, (r.width, r.height), r.sha256) for r in rows
    ]


class PhotoFolder(DependencyProvider):
    """The photo folder from the service's YAML config (``PHOTOS_DIR``), read once in
    ``setup``; the service hands it to the runtime before its first request."""

    def setup(self) -> None:
        self.folder = self.container.config.get(PHOTOS_DIR) or None

    def get_dependency(self, worker_ctx: Any) -> str | None:
        return self.folder
