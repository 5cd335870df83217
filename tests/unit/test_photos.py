"""Photos: an upload is taken only when it really is a JPEG, PNG or WebP image of the type it
claims and within the size; reports and batch items name photos by id; the case and the
department's message carry them; reading one needs the rights of reading its case (before a
report attached it, only its uploader's).
"""

from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa
from PIL import Image

from gridflow_common.domain import access as a
from gridflow_common.domain import intake_batch as ib
from gridflow_intake import models
from gridflow_intake import photos as ph
from tests.credentials import SignedApi, bearer

PHOTOS = "/api/v1/photos"
TENGQIAO = {"lat": 28.05, "lon": 120.635}


@pytest.fixture(autouse=True)
def _no_admin_token(monkeypatch):
    monkeypatch.delenv("GRIDFLOW_ADMIN_TOKEN", raising=False)


@pytest.fixture
def api(gridflow):
    return SignedApi(gridflow)


def _image(kind: str, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buf, kind)
    return buf.getvalue()


def _key(gridflow, channel: str = "grid_app") -> str:
    _, token = gridflow.identities().issue(a.CHANNEL_KEY, label=channel, channel=channel)
    return token


def _upload(api, data: bytes, content_type: str | None, headers=None):
    h = dict(headers or {})
    if content_type:
        h["Content-Type"] = content_type
    return api.handle("POST", PHOTOS, data, h)


def _photo_rows(g) -> int:
    with g.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(models.photos)).scalar_one()


def _report(n: int, photos: list[str], **changes) -> dict:
    return {
        "channel": "grid_app",
        "external_id": f"photo-{n}",
        "description": "路边垃圾堆积，散发异味",
        "category": "event.medical_waste",
        "location": dict(TENGQIAO),
        "photos": photos,
        **changes,
    }


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")],
)
def test_an_image_of_an_allowed_type_is_stored_and_read_back_by_its_uploader(
    api, gridflow, kind, content_type
):
    data = _image(kind)
    key = _key(gridflow)
    answer = _upload(api, data, content_type, bearer(key))
    assert answer.status == 201, answer.body
    photo = answer.body
    assert photo["content_type"] == content_type
    assert (photo["width"], photo["height"]) == (40, 30)
    assert photo["url"] == f"/api/v1/photos/{photo['photo_id']}"
    assert photo["sha256"] == ib.content_address(data)
    # Kept in the folder beside the embedded default's database, by its sha256.
    stored = ph.store_for(gridflow.runtimes["intake"]).path(photo["sha256"])
    assert stored.read_bytes() == data
    back = api.handle("GET", photo["url"], b"", bearer(key))
    assert back.status == 200
    assert back.body == data
    assert back.content_type == content_type


@pytest.mark.parametrize(
    ("data", "content_type", "status", "field", "why"),
    [
        pytest.param(b"not an image at all", "image/jpeg", 422, "_body", "not a JPEG", id="text"),
        pytest.param(b"%PDF-1.7\n" + b"0" * 100, "image/png", 422, "_body", "not a JPEG", id="pdf"),
        pytest.param(
            None,
            "image/jpeg",
            422,
            "_body",
            "image/png image, not image/jpeg",
            id="png-claiming-jpeg",
        ),
        pytest.param(
            b"GIF89a" + b"\x00" * 40, "image/gif", 415, "content_type", "not taken", id="gif"
        ),
        pytest.param(
            b"\x89PNG\r\n\x1a\n",
            "application/json",
            415,
            "content_type",
            "not taken",
            id="json-type",
        ),
        pytest.param(b"", "image/png", 400, "_body", "empty", id="empty"),
        pytest.param(b"\x00" * 64, "image/png", 422, "_body", "not a JPEG", id="nul-bytes"),
    ],
)
def test_what_is_not_an_allowed_image_is_refused_and_leaves_nothing(
    api, gridflow, data, content_type, status, field, why
):
    if data is None:
        data = _image("PNG")
    answer = _upload(api, data, content_type)
    assert answer.status == status, answer.body
    assert why in answer.body["errors"][field][0]
    assert _photo_rows(gridflow) == 0


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP"])
def test_a_truncated_image_is_refused(api, gridflow, kind):
    data = _image(kind, (200, 150))
    content_type = f"image/{kind.lower()}"
    answer = _upload(api, data[: len(data) // 2], content_type)
    assert answer.status == 422, answer.body
    assert "damaged or truncated" in answer.body["errors"]["_body"][0]
    assert _photo_rows(gridflow) == 0


def test_a_decompression_bomb_is_refused_before_it_is_decoded(api, gridflow):
    # A tiny PNG declaring 10,000 x 10,000 pixels (100 M, over the 50 M taken).
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, "PNG")
    answer = _upload(api, buf.getvalue(), "image/png")
    assert answer.status == 422
    assert "pixels" in answer.body["errors"]["_body"][0]


def test_a_photo_over_the_size_limit_is_a_413(api, gridflow):
    data = _image("PNG") + b"\x00" * (ib.MAX_PHOTO_BYTES)
    answer = _upload(api, data, "image/png")
    assert answer.status == 413
    assert _photo_rows(gridflow) == 0


def test_uploading_needs_a_credential(gridflow):
    answer = gridflow.api().handle("POST", PHOTOS, _image("PNG"), {"Content-Type": "image/png"})
    assert answer.status == 401
    assert _photo_rows(gridflow) == 0


def test_an_unattached_photo_is_only_its_uploaders(api, gridflow):
    uploader, other = _key(gridflow), _key(gridflow)
    photo = _upload(api, _image("PNG"), "image/png", bearer(uploader)).body
    assert api.handle("GET", photo["url"], b"", bearer(other)).status == 404
    # Not even the admin: it belongs to no case yet.
    assert api.handle("GET", photo["url"]).status == 404
    assert api.handle("GET", photo["url"], b"", bearer(uploader)).status == 200


def test_a_report_carries_its_photos_to_the_case_and_the_departments(api, gridflow):
    key = _key(gridflow)
    photo = _upload(api, _image("JPEG"), "image/jpeg", bearer(key)).body
    answer = api.handle(
        "POST",
        "/api/v1/reports",
        json.dumps(_report(1, [photo["photo_id"]])).encode(),
        bearer(key),
    )
    assert answer.status == 201, answer.body
    case_id = answer.body["case_id"]
    case = api.handle("GET", f"/api/v1/cases/{case_id}").body
    assert [p["photo_id"] for p in case["photos"]] == [photo["photo_id"]]
    gridflow.drain()
    messages = [m for q in gridflow.bus.unit_queues.values() for m in q if m["case_id"] == case_id]
    assert messages, "the case reached no department"
    assert all(m["photos"] == [photo["url"]] for m in messages)
    # Attached: now the case's readers may see it (the admin), and its holder's credential.
    assert api.handle("GET", photo["url"]).status == 200
    holder = case["handler"] or messages[0]["unit"]
    assert api.handle("GET", photo["url"], b"", bearer(api.holder_token(holder))).status == 200
    # A channel key reads no case, so no attached photo, even one it uploaded.
    assert api.handle("GET", photo["url"], b"", bearer(key)).status == 404
    # A department not involved in the case sees it as not there.
    outsider = api.holder_token("police")
    assert api.handle("GET", photo["url"], b"", bearer(outsider)).status == 404


def test_a_report_naming_an_unknown_or_foreign_photo_is_refused_and_leaves_nothing(api, gridflow):
    key, other = _key(gridflow), _key(gridflow)
    foreign = _upload(api, _image("PNG"), "image/png", bearer(other)).body["photo_id"]
    body = _report(1, ["ph-nosuchphoto", foreign])
    answer = api.handle("POST", "/api/v1/reports", json.dumps(body).encode(), bearer(key))
    assert answer.status == 422
    assert set(answer.body["errors"]) == {"photos.0", "photos.1"}
    with gridflow.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(models.cases)).scalar() == 0
        row = conn.execute(sa.select(models.photos.c.case_id)).scalar()
    assert row is None


def test_a_photo_belongs_to_one_case_and_a_batch_item_names_photos_too(api, gridflow):
    key = _key(gridflow)
    photo = _upload(api, _image("WEBP"), "image/webp", bearer(key)).body["photo_id"]
    far = {"lat": 27.995, "lon": 120.556}
    batch = {"items": [_report(1, [photo]), _report(2, [photo], location=far)]}
    answer = api.handle("POST", "/api/v1/reports/batch", json.dumps(batch).encode(), bearer(key))
    first, second = answer.body["results"]
    assert first["outcome"] == "registered"
    assert second["outcome"] == "refused"
    assert "already belongs" in second["errors"]["items.1.photos.0"][0]
    # Sent again, both are answered as received; nothing moves.
    again = api.handle("POST", "/api/v1/reports/batch", json.dumps(batch).encode(), bearer(key))
    assert [r["outcome"] for r in again.body["results"]] == ["resubmission", "refused"]


def test_too_many_photos_on_one_report_is_refused(api, gridflow):
    body = _report(1, [f"ph-{n}" for n in range(ib.MAX_PHOTOS_PER_REPORT + 1)])
    answer = api.handle("POST", "/api/v1/reports", json.dumps(body).encode())
    assert answer.status == 400
    assert "photos" in answer.body["errors"]


def test_the_same_bytes_twice_are_one_file(api, gridflow):
    data = _image("PNG")
    one = _upload(api, data, "image/png").body
    two = _upload(api, data, "image/png").body
    assert one["photo_id"] != two["photo_id"]
    assert one["sha256"] == two["sha256"]
    folder = ph.store_for(gridflow.runtimes["intake"]).path(one["sha256"]).parent
    assert [p.name for p in folder.iterdir()] == [one["sha256"]]


def test_magic_bytes_are_sniffed_by_the_domain():
    assert ib.sniff_image(b"\xff\xd8\xff\xe0") == ib.JPEG
    assert ib.sniff_image(b"\x89PNG\r\n\x1a\n....") == ib.PNG
    assert ib.sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == ib.WEBP
    assert ib.sniff_image(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert ib.sniff_image(b"GIF89a") is None
