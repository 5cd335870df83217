"""``POST /api/v1/photos`` and ``GET /api/v1/photos/{photo_id}``. ``IntakeApi`` inherits the
endpoints; checking and keeping a photo is ``gridflow_intake.photos``.

Upload: the raw image as the body, its type as the Content-Type (``image/jpeg``, ``image/png``,
``image/webp``), at most ``MAX_PHOTO_BYTES`` (8 MiB, 413 beyond), with any credential (a
channel's key, such as the grid app's, included; not anonymously: the photo folder is no public
file host). The bytes must be an image of the declared type (magic bytes, then decoded whole):
415 for another Content-Type, 422 for bytes that are not that image or are truncated. Answer:
201 and ``photo_id``, ``url`` and what was checked. A report names it in ``photos``.

Reading: the rights of reading its case (``GET /api/v1/cases/{id}``); before a report attached
it, only the credential that uploaded it. Anything else is the 404 of a photo that does not
exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marshmallow import Schema, fields

from gridflow_common.domain import intake_batch as ib
from gridflow_intake import bodies
from gridflow_intake import handlers as h
from gridflow_intake import photos as ph

if TYPE_CHECKING:
    from gridflow_intake.api import Answer, Call


class PhotoSchema(Schema):
    photo_id = fields.String(required=True)
    url = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)
    sha256 = fields.String(required=True)


def _no_photo(photo_id: str) -> h.Rejected:
    return h.Rejected(404, {"photo_id": [f"no photo {photo_id!r}"]})


class PhotoEndpoints:
    # Provided by IntakeApi.
    runtime: Any

    if TYPE_CHECKING:

        def _readable_case(self, work: Any, call: Call, case_id: str) -> tuple[Any, Any]: ...
        def _audit_within(self, work: Any, call: Call, status: int) -> None: ...

    def post_photo(self, call: Call) -> Answer:
        from gridflow_intake.api import Answer

        principal = call.principal
        assert principal is not None
        request = call.request
        declared = request.mimetype or None
        # The type first, then the size: neither reads a byte of a body that is refused.
        if declared not in ib.PHOTO_TYPES:
            ph.check_image(b"-", declared)  # raises the 415 naming the types taken
        data = bodies.read_body(request, ib.MAX_PHOTO_BYTES)
        kind, width, height = ph.check_image(data, declared)
        store = ph.store_for(self.runtime)
        with self.runtime.work() as work:
            photo = ph.save(work, store, data, kind, (width, height), principal.credential_id)
            self._audit_within(work, call, 201)
        return Answer(201, photo, headers={"Location": photo["url"]})

    def get_photo(self, call: Call, photo_id: str) -> Answer:
        from gridflow_intake.api import Answer

        principal = call.principal
        assert principal is not None
        with self.runtime.work() as work:
            row = ph.row(work, photo_id)
            if row is None:
                raise _no_photo(photo_id)
            if row.case_id is None:
                if row.uploaded_by != principal.credential_id:
                    raise _no_photo(photo_id)
            else:
                try:
                    self._readable_case(work, call, row.case_id)
                except h.Rejected:
                    raise _no_photo(photo_id) from None
            self._audit_within(work, call, 200)
        data = ph.store_for(self.runtime).get(row.sha256)
        if data is None:
            # The row outlived its file (a folder restored from an older backup): said plainly.
            return Answer(
                410, {"errors": {"photo_id": [f"photo {photo_id!r} is no longer stored"]}}
            )
        return Answer(
            200,
            data,
            content_type=row.content_type,
            headers={
                "Cache-Control": "private, max-age=3600",
                "X-Content-Type-Options": "nosniff",
                "ETag": f'"{row.sha256}"',
            },
        )
