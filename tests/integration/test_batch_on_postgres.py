"""The batch upload and photos on the real PostgreSQL: each item in its own savepoint (a refused
item leaves no row and no outbox row, the others commit), the same batch sent by several phones
at once taken exactly once per item, and a photo attached to its case.

Run under `nameko test` (eventlet monkey-patched, psycopg2 green): the parallel batches below
are green threads, each holding its own connection, so their transactions really overlap.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest
import sqlalchemy as sa
from PIL import Image

from gridflow_common import contracts as c
from gridflow_common.clock import RealClock
from gridflow_common.jurisdictions import JurisdictionStore
from gridflow_common.runtime import ServiceRuntime
from gridflow_intake import handlers as h
from gridflow_intake import models
from gridflow_intake import photos as ph
from gridflow_intake.api import IntakeApi
from tests.integration.support import together

pytestmark = pytest.mark.integration
PARALLEL = 4


@pytest.fixture(scope="module")
def api(database_url, engine, tmp_path_factory):
    engine = sa.create_engine(database_url, pool_size=PARALLEL + 2, max_overflow=PARALLEL)
    store = JurisdictionStore(engine)
    runtime = ServiceRuntime(c.INTAKE, engine, RealClock(), store, h.DEFINITION.tables())
    runtime.extras[ph.PHOTOS_DIR] = str(tmp_path_factory.mktemp("photos"))
    yield IntakeApi(runtime, peers=None)
    engine.dispose()


def _item(tag: str, n: int, base: float = 28.03, **changes) -> dict:
    # Spread out (about 300 m apart; each test from its own base), so no item joins another's
    # case.
    item = {
        "channel": "grid_app",
        "external_id": f"{tag}-{n}",
        "description": "路边堆放医疗废弃物",
        "category": "event.medical_waste",
        "location": {"lat": base + 0.003 * n, "lon": 120.62},
    }
    item.update(changes)
    return item


def _count(api, table, *where) -> int:
    with api.runtime.engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(table)
        return conn.execute(query.where(*where) if where else query).scalar_one()


def _outbox(api) -> int:
    return _count(api, api.runtime.tables["outbox"])


def test_a_refused_item_rolls_back_to_its_savepoint_alone(api, admin_headers):
    tag = f"pg-{uuid.uuid4().hex[:8]}"
    items = [
        _item(tag, 0),
        _item(tag, 1, location={"lat": 28.03, "lon": 200}),
        _item(tag, 2, category="no.such"),
        _item(tag, 3),
    ]
    outbox_before = _outbox(api)
    answer = api.handle(
        "POST", "/api/v1/reports/batch", json.dumps({"items": items}).encode(), admin_headers
    )
    assert answer.status == 200, answer.body
    outcomes = [r["outcome"] for r in answer.body["results"]]
    assert outcomes == ["registered", "refused", "refused", "registered"]
    mine = models.reports.c.external_id.like(f"{tag}-%")
    assert _count(api, models.reports, mine) == 2
    # One case_registered per registered item; the refused items' events went with them.
    assert _outbox(api) - outbox_before == 2


def test_the_same_batch_from_several_phones_at_once_is_taken_once_per_item(api, admin_headers):
    tag = f"race-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"items": [_item(tag, n, base=28.0) for n in range(10)]}).encode()
    answers = together(
        PARALLEL, lambda i: api.handle("POST", "/api/v1/reports/batch", body, admin_headers)
    )
    for answer in answers:
        assert not isinstance(answer, Exception), answer
        assert answer.status == 200, answer.body
    per_item = list(zip(*(a.body["results"] for a in answers), strict=True))
    for results in per_item:
        outcomes = sorted(r["outcome"] for r in results)
        assert outcomes == ["registered"] + ["resubmission"] * (PARALLEL - 1), results
        assert len({r["case_id"] for r in results}) == 1
    mine = models.reports.c.external_id.like(f"{tag}-%")
    assert _count(api, models.reports, mine) == 10


def test_observed_at_and_a_photo_are_kept_on_postgres(api, admin_headers):
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(buf, "PNG")
    photo = api.handle(
        "POST", "/api/v1/photos", buf.getvalue(), {**admin_headers, "Content-Type": "image/png"}
    )
    assert photo.status == 201, photo.body
    tag = f"obs-{uuid.uuid4().hex[:8]}"
    clock = api.handle("GET", "/api/v1/admin/clock", b"", admin_headers).body["now"]
    item = _item(tag, 0, base=27.99, observed_at=clock, photos=[photo.body["photo_id"]])
    answer = api.handle(
        "POST", "/api/v1/reports/batch", json.dumps({"items": [item]}).encode(), admin_headers
    )
    (result,) = answer.body["results"]
    assert result["outcome"] == "registered", result
    case = api.handle("GET", f"/api/v1/cases/{result['case_id']}", b"", admin_headers).body
    assert case["observed_at"] == clock
    assert [p["photo_id"] for p in case["photos"]] == [photo.body["photo_id"]]
    read = api.handle("GET", photo.body["url"], b"", admin_headers)
    assert read.status == 200 and read.body == buf.getvalue()
