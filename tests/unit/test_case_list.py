"""Finding cases (GET /api/v1/cases) and the board's summary (GET /api/v1/board/summary), on
the embedded default (SQLite) with Lucheng: each filter selects the cases it names and no other,
totals count the filter, paging by cursor neither repeats nor skips while cases are registered,
bad parameters are refused by name, and every caller sees exactly the cases
``access.may_read_case`` lets them read, in the list, its totals and the summary."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest
import sqlalchemy as sa

from gridflow_common.domain import access as a
from gridflow_common.domain import lifecycle
from gridflow_common.domain import vocabulary as v
from gridflow_intake import models
from gridflow_intake.identity import BEARER
from tests.intake_messages import colour_changed
from tests.unit.test_intake_cases import _deliver, _pump

SEEDED = 160
PHONE = "13812345678"
OPEN_STATUSES = lifecycle.OPEN_STATUSES


class City:
    def __init__(self, gridflow):
        self.g = gridflow
        self.api = gridflow.api()
        self.j = gridflow.store.active()[1]
        self.tokens: dict[str, str] = {"admin": gridflow.admin_token}
        self.principals: dict[str, a.Principal] = {}
        self.rows: list[dict] = []

    def get(self, path: str, who: str = "admin", **params) -> tuple[int, dict]:
        from urllib.parse import urlencode

        query = urlencode(params, doseq=True)
        answer = self.api.handle(
            "GET",
            f"{path}?{query}" if query else path,
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
        )
        return answer.status, answer.body

    def user(self, who: str, role: str, scope: str | None) -> None:
        status, body = self.post_admin(
            "/api/v1/admin/users", {"username": f"list-{who}", "role": role, "scope": scope}
        )
        assert status == 201, body
        _, self.tokens[who] = self.g.identities().issue(
            BEARER, label=who, user_id=body["user"]["user_id"]
        )
        self.principals[who] = a.Principal(a.USER, who, who, "k", role=role, scope=scope)

    def holder_key(self, who: str, code: str) -> None:
        status, body = self.post_admin("/api/v1/admin/keys", {"holder": code})
        assert status == 201, body
        self.tokens[who] = body["token"]
        self.principals[who] = a.Principal(a.HOLDER_KEY, who, who, "k", scope=code)

    def post_admin(self, path: str, body: dict) -> tuple[int, dict]:
        import json

        answer = self.api.handle(
            "POST",
            path,
            json.dumps(body).encode(),
            {"Authorization": f"Bearer {self.tokens['admin']}"},
        )
        return answer.status, answer.body

    def now(self) -> dt.datetime:
        return self.g.clock.now()

    def seed(self, n: int, rng: random.Random, prefix: str = "GF-LIST", start: int = 0) -> list:
        j = self.j
        grids = [x.code for x in j.areas_at("grid")]
        streets = [x.code for x in j.areas_at("street")]
        departments = [d.code for d in j.departments]
        units = [u.code for u in j.units]
        categories = [x.code for x in j.categories]
        now = self.now()
        rows = []
        for i in range(start, start + n):
            area = rng.choice(grids + grids + streets)
            status = rng.choice([*v.CASE_STATUSES, v.DISPATCHED, v.ACCEPTED])
            running = lifecycle.has_running_clock(status)
            due = now + dt.timedelta(minutes=rng.randint(-3000, 3000)) if running else None
            colour = rng.choice(v.COLOURS) if running else None
            street = j.ancestor(area, "street")
            community = j.ancestor(area, "community")
            rows.append(
                dict(
                    case_id=f"{prefix}-{i:05d}",
                    status=status,
                    category=rng.choice(categories),
                    description=rng.choice(["路灯不亮", "井盖缺失", "垃圾满溢 a%_b"])
                    + f" 电话{PHONE}",
                    area_code=area,
                    tier=rng.choice(v.TIERS),
                    holder=rng.choice([None, *units]),
                    lead=rng.choice([None, *departments]),
                    assisting=rng.sample(departments, rng.choice([0, 0, 1, 2])),
                    assignment_id=f"{prefix}-{i:05d}-1",
                    escalations=rng.randint(0, 2),
                    reporters=1,
                    jurisdiction_version=1,
                    registered_at=now - dt.timedelta(minutes=rng.randint(0, 60 * 24 * 30)),
                    due_at=due,
                    colour=colour,
                    street_code=street.code if street else None,
                    community_code=community.code if community else None,
                    channel=rng.choice(v.CHANNELS),
                    address=rng.choice([None, "藤桥镇戍浦路 12 号", "五马街道解放路"]),
                )
            )
        with self.g.engine.begin() as conn:
            conn.execute(sa.insert(models.cases), rows)
            conn.execute(
                sa.insert(models.reports),
                [
                    dict(
                        case_id=r["case_id"],
                        channel=r["channel"],
                        description=r["description"],
                        reporter={"name": "张三", "phone": PHONE},
                        received_at=r["registered_at"],
                    )
                    for r in rows
                ],
            )
        self.rows.extend(rows)
        return rows

    def all_pages(self, who: str = "admin", limit: int = 200, **params) -> list[dict]:
        seen: list[dict] = []
        cursor = None
        for _ in range(1000):
            extra = {"cursor": cursor} if cursor else {}
            status, body = self.get("/api/v1/cases", who, limit=limit, **params, **extra)
            assert status == 200, body
            seen.extend(body["items"])
            cursor = body["next"]
            if cursor is None:
                return seen
        raise AssertionError("the pages did not end")


@pytest.fixture
def city(gridflow) -> City:
    city = City(gridflow)
    city.seed(SEEDED, random.Random(8))
    return city


def _ids(items: list[dict]) -> list[str]:
    return [i["case_id"] for i in items]


def _department_of(city: City, holder: str | None) -> str | None:
    if holder is None:
        return None
    unit = city.j.unit(holder)
    return unit.department_code if unit else holder


def _expected(city: City, name: str, value: str) -> set[str]:
    now = city.now()

    def matches(r: dict) -> bool:
        if name == "status":
            return r["status"] in (OPEN_STATUSES if value == "open" else (value,))
        if name == "colour":
            return r["colour"] == (None if value == "none" else value)
        if name == "department":
            return value in (r["lead"], _department_of(city, r["holder"]))
        if name == "unit":
            return r["holder"] == value
        if name == "street":
            return r["street_code"] == value
        if name == "community":
            return r["community_code"] == value
        if name == "grid":
            return r["area_code"] == value
        if name == "late":
            late = r["due_at"] is not None and r["due_at"] < now
            return late == (value == "true")
        if name == "q":
            return any(value.lower() in (t or "").lower() for t in (r["description"], r["address"]))
        return r[{"tier": "tier", "category": "category", "channel": "channel"}[name]] == value

    return {r["case_id"] for r in city.rows if matches(r)}


def _filters(city: City) -> list[tuple[str, str]]:
    rows = city.rows
    return [
        ("status", "open"),
        ("status", v.CLOSED),
        ("colour", v.RED),
        ("colour", "none"),
        ("tier", v.STREET),
        ("department", "urban_management"),
        ("department", "police"),
        ("unit", rows[0]["holder"] or rows[1]["holder"]),
        ("street", rows[3]["street_code"]),
        ("community", next(r["community_code"] for r in rows if r["community_code"])),
        ("grid", next(r["area_code"] for r in rows if r["community_code"])),
        ("category", rows[5]["category"]),
        ("channel", "hotline"),
        ("late", "true"),
        ("late", "false"),
        ("q", "井盖"),
        ("q", "%_"),
        ("q", "戍浦路"),
    ]


def test_each_filter_selects_exactly_its_cases_and_totals_count_them(city):
    for name, value in _filters(city):
        expected = _expected(city, name, value)
        got = city.all_pages(**{name: value})
        assert sorted(_ids(got)) == sorted(expected), (name, value)
        assert 0 < len(expected) < SEEDED, (name, value, "a filter must be tested on a split")
        status, body = city.get("/api/v1/cases", limit=5, **{name: value})
        colours = Counter(r["colour"] or "none" for r in city.rows if r["case_id"] in expected)
        assert body["totals"] == {
            "all": len(expected),
            **{k: colours.get(k, 0) for k in (*v.COLOURS, "none")},
        }, (name, value)


def test_filters_combine_and_values_repeat_or_separate_by_commas(city):
    both = _expected(city, "status", v.DISPATCHED) | _expected(city, "status", v.ACCEPTED)
    red_or_orange = _expected(city, "colour", v.RED) | _expected(city, "colour", v.ORANGE)
    got = city.all_pages(status=[v.DISPATCHED, v.ACCEPTED], colour="red,orange")
    assert set(_ids(got)) == both & red_or_orange and got


def test_registered_between_dates_of_the_city(city):
    j = city.j
    days = sorted({j.local(r["registered_at"]).date() for r in city.rows})
    first, last = days[3], days[-4]
    expected = {
        r["case_id"] for r in city.rows if first <= j.local(r["registered_at"]).date() <= last
    }
    got = city.all_pages(registered_from=first.isoformat(), registered_to=last.isoformat())
    assert set(_ids(got)) == expected and 0 < len(expected) < SEEDED


def test_sorts_order_the_cases(city):
    by_lateness = city.all_pages(sort="lateness", limit=13)
    running = [r for r in city.rows if r["due_at"] is not None]
    expected = [r["case_id"] for r in sorted(running, key=lambda r: (r["due_at"], r["case_id"]))]
    assert _ids(by_lateness)[: len(running)] == expected
    assert all(i["due"] is None for i in by_lateness[len(running) :])
    assert len(by_lateness) == SEEDED
    newest = _ids(city.all_pages(sort="-registered", limit=17))
    key = {r["case_id"]: (r["registered_at"], r["case_id"]) for r in city.rows}
    assert newest == sorted(key, key=lambda cid: key[cid], reverse=True)
    assert _ids(city.all_pages(sort="registered", limit=9)) == list(reversed(newest))


@pytest.mark.parametrize("sort", ["registered", "-registered", "lateness"])
def test_paging_neither_repeats_nor_skips_while_cases_are_registered(city, sort):
    rng = random.Random(sort)
    before = {r["case_id"] for r in city.rows}
    seen: list[str] = []
    cursor = None
    added = 0
    for page in range(100):
        extra = {"cursor": cursor} if cursor else {}
        status, body = city.get("/api/v1/cases", limit=11, sort=sort, **extra)
        assert status == 200, body
        seen.extend(_ids(body["items"]))
        cursor = body["next"]
        if cursor is None:
            break
        # Cases registered between two pages (some earlier in the order, some later).
        city.seed(3, rng, prefix=f"GF-NEW{page:02d}", start=0)
        added += 3
    assert len(seen) == len(set(seen)), "a case appeared twice"
    assert before <= set(seen), f"skipped: {sorted(before - set(seen))[:5]}"
    assert added > 0


def test_items_carry_what_the_board_shows_masked_for_those_who_may_not_see_reporters(city):
    city.user("street", a.STREET, "330302104")
    status, body = city.get("/api/v1/cases", "street", limit=1, q="电话")
    assert status == 200 and body["items"], body
    item = body["items"][0]
    row = next(r for r in city.rows if r["case_id"] == item["case_id"])
    assert PHONE not in item["description"] and "电话" in item["description"]
    assert set(item) >= {
        "case_id",
        "status",
        "category",
        "category_name",
        "tier",
        "handler",
        "lead",
        "assisting",
        "colour",
        "due",
        "registered_at",
        "area_code",
        "street",
        "community",
        "grid",
        "description",
        "address",
        "escalations",
        "channel",
    }
    assert item["street"] == row["street_code"] == "330302104"
    assert item["registered_at"].endswith("+08:00")
    # The command center sees the reporter's number, as in the case view.
    _, whole = city.get("/api/v1/cases", limit=200, q="电话")
    assert any(PHONE in i["description"] for i in whole["items"])


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"colour": "purple"}, "colour"),
        ({"status": "open,lost"}, "status"),
        ({"department": "nobody"}, "department"),
        ({"street": "330302104001"}, "street"),  # a community, not a street
        ({"grid": "330302104"}, "grid"),
        ({"frobnicate": "1"}, "frobnicate"),
        ({"sort": "colour"}, "sort"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"late": "maybe"}, "late"),
        ({"q": "x" * 101}, "q"),
        ({"q": "a\x00b"}, "q"),
        ({"registered_from": "yesterday"}, "registered_from"),
        ({"registered_to": "2026-01-05T10:00:00"}, "registered_to"),
        ({"cursor": "abc.def"}, "cursor"),
        ({"cursor": "路灯.不亮"}, "cursor"),
        ({"cursor": "a" * 601}, "cursor"),
        ({"registered_to": "9999-12-31"}, "registered_to"),
        ({"colour": "red," * 51}, "colour"),
        ({"status": ""}, "status"),
        ({"sort": ["lateness", "registered"]}, "sort"),
    ],
)
def test_bad_parameters_are_refused_naming_them(city, params, named):
    status, body = city.get("/api/v1/cases", **params)
    assert status == 400 and named in body["errors"], body
    if named != "cursor" and "sort" not in params and "limit" not in params:
        status, body = city.get("/api/v1/board/summary", **params)
        assert status == 400 and named in body["errors"], body


def test_a_cursor_altered_or_used_with_other_filters_is_refused(city):
    _, body = city.get("/api/v1/cases", limit=5, status="open")
    cursor = body["next"]
    assert cursor
    payload, _, mac = cursor.partition(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    for bad in (f"{flipped}.{mac}", f"{payload}.{mac[:-1]}x", cursor + "x"):
        status, answer = city.get("/api/v1/cases", limit=5, status="open", cursor=bad)
        assert status == 400 and "cursor" in answer["errors"], answer
    status, answer = city.get("/api/v1/cases", limit=5, status="closed", cursor=cursor)
    assert status == 400 and "cursor" in answer["errors"], answer
    assert city.get("/api/v1/cases", limit=5, status="open", cursor=cursor)[0] == 200


def test_the_summary_counts_open_cases_and_lists_the_late_ones_most_late_first(city):
    status, body = city.get("/api/v1/board/summary")
    assert status == 200, body
    open_rows = [r for r in city.rows if r["status"] in OPEN_STATUSES]
    assert body["open"] == len(open_rows)
    colours = Counter(r["colour"] or "none" for r in open_rows)
    assert body["by_colour"] == {k: colours.get(k, 0) for k in (*v.COLOURS, "none")}
    assert body["by_tier"] == dict(sorted(Counter(r["tier"] for r in open_rows).items()))
    streets = Counter(r["street_code"] for r in open_rows)
    assert {s["code"]: s["count"] for s in body["by_street"]} == dict(streets)
    departments = Counter(r["lead"] or _department_of(city, r["holder"]) for r in open_rows)
    assert {d["code"]: d["count"] for d in body["by_department"]} == dict(departments)
    late = [r for r in open_rows if r["colour"] in ("yellow", "orange", "red")]
    expected = [r["case_id"] for r in sorted(late, key=lambda r: (r["due_at"], r["case_id"]))]
    assert _ids(body["late"]) == expected[:100] and expected
    assert all(
        i["handler"] == next(r["holder"] for r in late if r["case_id"] == i["case_id"])
        for i in body["late"]
    )
    # The same filters as the list.
    _, red = city.get("/api/v1/board/summary", colour="red", street="330302104")
    expected_red = [
        r for r in open_rows if r["colour"] == "red" and r["street_code"] == "330302104"
    ]
    assert red["open"] == len(expected_red) and red["by_colour"]["red"] == len(expected_red)


CALLERS = {
    "cc": (a.COMMAND_CENTER, None),
    "cc_district": (a.COMMAND_CENTER, "330302"),
    "leader_cc": (a.LEADER, "command-330302"),
    "leader_dept": (a.LEADER, "urban_management-330302"),
    "leader_street": (a.LEADER, "center-330302104"),
    "dept": (a.DEPARTMENT, "urban_management"),
    "dept_unit": (a.DEPARTMENT, "urban_management-330302104"),
    "street": (a.STREET, "330302104"),
    "community": (a.COMMUNITY, "330302104001"),
    "grid": (a.GRID_WORKER, "330302104001001"),
}


def test_every_caller_sees_exactly_the_cases_it_may_read_in_list_totals_and_summary(city):
    for who, (role, scope) in CALLERS.items():
        city.user(who, role, scope)
    city.holder_key("key_dept", "police")
    city.holder_key("key_unit", "police-330302104")
    for who, principal in city.principals.items():
        readable = {
            r["case_id"]
            for r in city.rows
            if a.may_read_case(
                principal,
                a.CaseFacts(r["area_code"], r["holder"], r["lead"], tuple(r["assisting"])),
                city.j,
            )
        }
        listed = city.all_pages(who, limit=50)
        assert sorted(_ids(listed)) == sorted(readable), who
        _, body = city.get("/api/v1/cases", who, limit=1)
        assert body["totals"]["all"] == len(readable), who
        status, summary = city.get("/api/v1/board/summary", who)
        assert status == 200, summary
        open_readable = [
            r for r in city.rows if r["case_id"] in readable and r["status"] in OPEN_STATUSES
        ]
        assert summary["open"] == len(open_readable), who
        assert set(_ids(summary["late"])) <= readable, who
        assert sum(d["count"] for d in summary["by_department"]) == len(open_readable)
        assert sum(s["count"] for s in summary["by_street"]) == len(open_readable)
    # Some callers see part of the city: the equality above is a real partition.
    assert 0 < len(city.all_pages("street", limit=200)) < SEEDED


def test_a_channel_key_lists_nothing(city):
    status, body = city.post_admin("/api/v1/admin/keys", {"channel": "hotline"})
    city.tokens["hotline"] = body["token"]
    status, body = city.get("/api/v1/cases", "hotline")
    assert status == 403, body
    status, body = city.get("/api/v1/board/summary", "hotline")
    assert status == 403, body


# -- the row's clock columns, kept by intake's projections ----------------------------------------


STREETLIGHT = {
    "channel": "web",
    "description": "藤桥戍浦社区门口的路灯不亮",
    "category": "component.streetlight",
    "location": {"lat": 28.05, "lon": 120.64},
}


def test_dispatch_fills_the_clock_columns_a_colour_changes_them_and_resolving_stops_them(gridflow):
    import json

    api = gridflow.api()
    admin = {"Authorization": f"Bearer {gridflow.admin_token}"}
    answer = api.handle("POST", "/api/v1/reports", json.dumps(STREETLIGHT).encode(), admin)
    assert answer.status == 201, answer.body
    case_id = answer.body["case_id"]
    _pump(gridflow)

    def row():
        with gridflow.engine.connect() as conn:
            return conn.execute(
                sa.select(models.cases).where(models.cases.c.case_id == case_id)
            ).one()

    first = row()
    assert first.status == v.DISPATCHED and first.colour == v.GREEN
    assert first.due_at is not None and first.due_at > gridflow.clock.now()
    assert (first.street_code, first.community_code, first.channel) == (
        "330302104",
        "330302104001",
        "web",
    )
    listed = api.handle("GET", "/api/v1/cases?status=dispatched&colour=green", headers=admin)
    assert case_id in [i["case_id"] for i in listed.body["items"]]
    due_shown = next(i["due"] for i in listed.body["items"] if i["case_id"] == case_id)
    assert dt.datetime.fromisoformat(due_shown) == first.due_at

    # A colour of another assignment changes nothing; of the current one, the row's colour.
    at = gridflow.clock.now() + dt.timedelta(hours=1)
    _deliver(gridflow, "on_case_colour_changed", colour_changed(case_id, "other-1", "red", at))
    assert row().colour == v.GREEN
    message = colour_changed(case_id, first.assignment_id, v.ORANGE, at)
    assert _deliver(gridflow, "on_case_colour_changed", message) == "done"
    assert row().colour == v.ORANGE
    # An older colour of the same clock does not overwrite a newer one.
    older = colour_changed(case_id, first.assignment_id, v.YELLOW, at - dt.timedelta(minutes=5))
    _deliver(gridflow, "on_case_colour_changed", older)
    assert row().colour == v.ORANGE

    # The holder resolves it: no clock runs, so neither due instant nor colour.
    made = api.handle(
        "POST",
        "/api/v1/admin/keys",
        json.dumps({"holder": first.holder}).encode(),
        admin,
    )
    key = made.body["token"]
    for update in ("accepted", "resolved"):
        status = api.handle(
            "POST",
            f"/api/v1/cases/{case_id}/updates",
            json.dumps({"status": update}).encode(),
            {"Authorization": f"Bearer {key}"},
        ).status
        assert status == 202
    _pump(gridflow)
    last = row()
    assert last.status == v.RESOLVED and last.due_at is None and last.colour is None


def test_list_items_and_the_late_list_name_their_holder_and_lead(city):
    # One case of known codes (a station of Nanhui, its bureau leading), late and open.
    now = city.now()
    [row] = city.seed(1, random.Random(1), prefix="GF-NAMES")
    with city.g.engine.begin() as conn:
        conn.execute(
            sa.update(models.cases)
            .where(models.cases.c.case_id == row["case_id"])
            .values(
                category="event.exposed_rubbish",
                holder="urban_management-330302005",
                lead="urban_management",
                status=v.DISPATCHED,
                colour="red",
                due_at=now - dt.timedelta(days=400),
            )
        )
    [item] = [i for i in city.all_pages() if i["case_id"] == row["case_id"]]
    assert (item["handler"], item["handler_name"]) == ("urban_management-330302005", "南汇执法中队")
    assert (item["lead"], item["lead_name"]) == ("urban_management", "鹿城区综合行政执法局")
    assert item["category_name"] == "暴露垃圾"
    # The summary's late list: the most late case first, named the same way.
    _, summary = city.get("/api/v1/board/summary")
    first = summary["late"][0]
    assert first["case_id"] == row["case_id"]
    assert (first["handler_name"], first["lead_name"]) == ("南汇执法中队", "鹿城区综合行政执法局")
    # Every item: a unit's name for its holder, a department's for its lead, None for none.
    units = {u.code: u.name for u in city.j.units}
    departments = {d.code: d.name_zh for d in city.j.departments}
    for i in city.all_pages():
        assert i["handler_name"] == (units[i["handler"]] if i["handler"] else None), i
        assert i["lead_name"] == (departments[i["lead"]] if i["lead"] else None), i
