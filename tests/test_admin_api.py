"""Admin API through HTTP with minted tokens: the guard on every route, the feedback list
(filters, text search, cursor pages), the review workflow, summary, patterns, content gaps,
and the bad input of issue 12 (each a contract error or an empty result, nothing changed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from aggregators import keys
from tests.admin_data import ADMIN, EXPIRED_TOKEN, PLAYER, SETTINGS, send_feedback
from tests.auth_keys import bearer
from tests.factories import API, TIMESTAMP_RE, error, new_session, validation

pytestmark = pytest.mark.parametrize("settings_overrides", [SETTINGS], indirect=True)

ROUTES = [
    ("GET", "/admin/feedback"),
    ("GET", "/admin/feedback/summary"),
    ("GET", "/admin/feedback/patterns"),
    ("GET", "/admin/feedback/export.csv"),
    ("GET", "/admin/insights/content-gaps"),
    ("PATCH", "/admin/feedback/f_00000001"),
]
REQUIRED = error(
    "authentication_required", "This needs a bearer token (Authorization: Bearer <JWT>)", 401
)
FORBIDDEN = error("forbidden", "This needs the admin role", 403)


async def admin_get(client: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    return await client.get(f"{API}{path}", params=params, headers=ADMIN)


async def ok(client: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await admin_get(client, path, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def patch(client: httpx.AsyncClient, feedback_id: str, body: Any, **kw: Any):
    return await client.patch(
        f"{API}/admin/feedback/{feedback_id}", json=body, headers={**ADMIN, **kw}
    )


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_guard_on_every_route(client: httpx.AsyncClient, sql, method: str, path: str):
    await send_feedback(client)
    body = {"status": "reviewed"}
    anonymous = await client.request(method, f"{API}{path}", json=body)
    assert (anonymous.status_code, anonymous.json()) == (401, REQUIRED)
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    spoofed = await client.request(
        method, f"{API}{path}", json=body, headers={"X-Admin": "1", "X-Roles": "admin"}
    )
    assert (spoofed.status_code, spoofed.json()) == (401, REQUIRED)
    player = await client.request(method, f"{API}{path}", json=body, headers=PLAYER)
    assert (player.status_code, player.json()) == (403, FORBIDDEN)
    expired = await client.request(method, f"{API}{path}", json=body, headers=bearer(EXPIRED_TOKEN))
    assert expired.status_code == 401
    assert expired.json()["error"] == "authentication_failed"
    assert await sql.fetchval("SELECT count(*) FROM feedback WHERE status <> 'new'") == 0


async def test_list_items_newest_first_with_exact_shape(client: httpx.AsyncClient) -> None:
    first = await send_feedback(client, rating="down", comment="wrong class", search_mode="deep")
    second = await send_feedback(client, query="Healer  guide", response_snippet="x" * 600)
    body = await ok(client, "/admin/feedback")
    assert body["next_cursor"] is None
    assert body["items"] == [
        {
            "id": second["feedback_id"],
            "query": "Healer  guide",
            "snippet": "x" * 500,
            "mode": "smart",
            "rating": "up",
            "comment": None,
            "status": "new",
            "note": None,
            "received_at": second["received_at"],
            "reviewed_at": None,
            "reviewed_by": None,
        },
        {
            "id": first["feedback_id"],
            "query": "best tank build",
            "snippet": "Try a Paladin.",
            "mode": "deep",
            "rating": "down",
            "comment": "wrong class",
            "status": "new",
            "note": None,
            "received_at": first["received_at"],
            "reviewed_at": None,
            "reviewed_by": None,
        },
    ]


async def test_filters_and_text_search(client: httpx.AsyncClient) -> None:
    down = await send_feedback(client, rating="down", comment="The PALADIN tip was wrong")
    deep = await send_feedback(client, query="node siege timer", search_mode="deep")
    await send_feedback(client, query="100% crit build")
    reviewed = await send_feedback(client, query="caravan route")
    assert (await patch(client, reviewed["feedback_id"], {"status": "reviewed"})).is_success

    async def ids(**params: Any) -> list[str]:
        return [i["id"] for i in (await ok(client, "/admin/feedback", **params))["items"]]

    assert await ids(rating="down") == [down["feedback_id"]]
    assert await ids(search_mode="deep") == [deep["feedback_id"]]
    assert await ids(status="reviewed") == [reviewed["feedback_id"]]
    assert len(await ids(status="new")) == 3
    assert await ids(q="paladin") == [down["feedback_id"]]  # comment, any case
    assert await ids(q="SIEGE tim") == [deep["feedback_id"]]  # query
    assert len(await ids(q="100% crit")) == 1  # % taken literally
    assert await ids(q="100%% crit") == []
    assert await ids(q="x' OR '1'='1") == []
    assert await ids(q="'; DROP TABLE feedback; --") == []
    assert await ids(rating="up", search_mode="deep", status="new") == [deep["feedback_id"]]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert await ids(**{"from": tomorrow}) == []
    assert len(await ids(to=tomorrow)) == 4


async def test_cursor_pages_never_repeat_or_skip(client: httpx.AsyncClient, sql) -> None:
    sent = [(await send_feedback(client))["feedback_id"] for _ in range(5)]
    # Two rows with the same received_at: the id breaks the tie.
    same = datetime(2026, 1, 1, tzinfo=UTC)
    await sql.execute(
        "UPDATE feedback SET received_at = $1 WHERE feedback_id = ANY($2::text[])", same, sent[:2]
    )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = await ok(client, "/admin/feedback", **params)
        seen += [i["id"] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [*reversed(sent[2:]), *sorted(sent[:2], reverse=True)]


@pytest.mark.parametrize(
    ("params", "field", "problem"),
    [
        ({"cursor": "not-a-cursor"}, "cursor", "is not a cursor this API returned"),
        ({"cursor": "YWJjOmZfMQ"}, "cursor", "is not a cursor this API returned"),
        (
            {"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTpmXzAwMDAwMDAx"},
            "cursor",
            "is not a cursor this API returned",
        ),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from", "must be before `to`"),
        ({"from": "yesterday"}, "from", "must be an ISO 8601 date or date-time"),
        ({"status": "archived"}, "status", "Invalid enum value 'archived'"),
        ({"rating": "meh"}, "rating", "Invalid enum value 'meh'"),
        ({"limit": "101"}, "limit", "Expected `int` <= 100"),
        ({"limit": "0"}, "limit", "Expected `int` >= 1"),
        ({"q": "x" * 201}, "q", "Expected `str` of length <= 200"),
        ({"q": "ab"}, "q", "Expected `str` of length >= 3"),
        ({"q": "%%%"}, "q", "must contain at least 3 letters or digits"),
        ({"q": "\u200b\u200b\u200b"}, "q", "must contain at least one visible character"),
    ],
)
async def test_bad_list_input(
    client: httpx.AsyncClient, params: dict[str, str], field: str, problem: str
) -> None:
    await send_feedback(client)
    response = await admin_get(client, "/admin/feedback", **params)
    assert (response.status_code, response.json()) == (422, validation(field, problem))


async def test_review_records_who_and_when(client: httpx.AsyncClient, sql) -> None:
    sent = await send_feedback(client, rating="down")
    before = datetime.now(UTC)
    response = await patch(client, sent["feedback_id"], {"status": "reviewed", "note": "checked"})
    assert response.status_code == 200
    item = response.json()
    assert (item["id"], item["status"], item["note"], item["reviewed_by"]) == (
        sent["feedback_id"],
        "reviewed",
        "checked",
        "Root",
    )
    assert TIMESTAMP_RE.match(item["reviewed_at"])
    assert datetime.fromisoformat(item["reviewed_at"]) >= before - timedelta(milliseconds=1)
    # Note only: the status stays; null clears the note.
    item = (await patch(client, sent["feedback_id"], {"note": "line 1\n\tline 2"})).json()
    assert (item["status"], item["note"]) == ("reviewed", "line 1\n\tline 2")
    item = (await patch(client, sent["feedback_id"], {"status": "resolved", "note": None})).json()
    assert (item["status"], item["note"]) == ("resolved", None)
    row = await sql.fetchrow(
        "SELECT status, note, reviewed_by, reviewed_by_player FROM feedback WHERE feedback_id = $1",
        sent["feedback_id"],
    )
    assert tuple(row) == ("resolved", None, "Root", "steam:1")
    listed = (await ok(client, "/admin/feedback", status="resolved"))["items"]
    assert [i["id"] for i in listed] == [sent["feedback_id"]]
    assert listed[0]["reviewed_at"] == item["reviewed_at"]


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"status": "archived"}, "status", "Invalid enum value 'archived'"),
        ({"note": "n" * 10_000}, "note", "Expected `str` of length <= 1000"),
        ({"note": "   "}, "note", "must contain at least one visible character"),
        (
            {"note": "a\u202eb"},
            "note",
            "must not contain bidirectional override or isolate characters",
        ),
        ({"note": "a\x07b"}, "note", "must not contain control characters"),
        ({}, "body", "send `status`, `note` or both"),
        ({"status": "reviewed", "reviewed_by": "Eve"}, "reviewed_by", None),
    ],
)
async def test_bad_review_changes_nothing(
    client: httpx.AsyncClient, sql, body: dict[str, Any], field: str, problem: str | None
) -> None:
    sent = await send_feedback(client)
    response = await patch(client, sent["feedback_id"], body)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert response.json()["details"][0]["field"] == field
    if problem is not None:
        assert response.json() == validation(field, problem)
    row = await sql.fetchrow("SELECT status, note, reviewed_at FROM feedback")
    assert tuple(row) == ("new", None, None)


async def test_review_needs_json_and_a_known_id(client: httpx.AsyncClient, sql) -> None:
    sent = await send_feedback(client)
    wrong_type = await client.patch(
        f"{API}/admin/feedback/{sent['feedback_id']}",
        content=b'{"status": "reviewed"}',
        headers={**ADMIN, "Content-Type": "text/plain"},
    )
    assert wrong_type.status_code == 422
    for unknown in ("f_0000dead", "nonsense", "f_0000DEAD"):
        response = await patch(client, unknown, {"status": "reviewed"})
        assert (response.status_code, response.json()) == (
            404,
            error("not_found", f"Feedback {unknown} not found", 404),
        )
    assert await sql.fetchval("SELECT status FROM feedback") == "new"


async def test_summary_totals_modes_and_days(client: httpx.AsyncClient, sql) -> None:
    for rating, mode in [("up", "quick"), ("up", "quick"), ("down", "quick"), ("down", "deep")]:
        await send_feedback(client, rating=rating, search_mode=mode)
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    # Yesterday's rollup rows as if written then (the rollup is what the summary reads).
    await sql.execute(
        "INSERT INTO feedback_daily (day, search_mode, rating, count)"
        " VALUES ($1, 'smart', 'up', 3)",
        yesterday,
    )
    body = await ok(client, "/admin/feedback/summary", days=2)
    assert body == {
        "days": 2,
        "totals": {"up": 5, "down": 2, "satisfaction": round(5 / 7, 4)},
        "by_mode": {
            "quick": {"up": 2, "down": 1, "satisfaction": round(2 / 3, 4)},
            "smart": {"up": 3, "down": 0, "satisfaction": 1.0},
            "deep": {"up": 0, "down": 1, "satisfaction": 0.0},
        },
        "daily": [
            {"day": yesterday.isoformat(), "search_mode": "quick", "up": 0, "down": 0},
            {"day": yesterday.isoformat(), "search_mode": "smart", "up": 3, "down": 0},
            {"day": yesterday.isoformat(), "search_mode": "deep", "up": 0, "down": 0},
            {"day": today.isoformat(), "search_mode": "quick", "up": 2, "down": 1},
            {"day": today.isoformat(), "search_mode": "smart", "up": 0, "down": 0},
            {"day": today.isoformat(), "search_mode": "deep", "up": 0, "down": 1},
        ],
    }
    one_day = await ok(client, "/admin/feedback/summary", days=1)
    assert one_day["totals"] == {"up": 2, "down": 2, "satisfaction": 0.5}
    assert len(one_day["daily"]) == 3


async def test_summary_without_feedback_has_null_satisfaction(client: httpx.AsyncClient):
    body = await ok(client, "/admin/feedback/summary")
    assert body["days"] == 7
    assert body["totals"] == {"up": 0, "down": 0, "satisfaction": None}
    assert body["by_mode"]["deep"] == {"up": 0, "down": 0, "satisfaction": None}
    assert len(body["daily"]) == 21


@pytest.mark.parametrize(
    ("path", "params", "field", "problem"),
    [
        ("/admin/feedback/summary", {"days": "0"}, "days", "Expected `int` >= 1"),
        ("/admin/feedback/summary", {"days": "366"}, "days", "Expected `int` <= 365"),
        ("/admin/feedback/patterns", {"limit": "101"}, "limit", "Expected `int` <= 100"),
        ("/admin/insights/content-gaps", {"days": "91"}, "days", "Expected `int` <= 90"),
        ("/admin/insights/content-gaps", {"days": "1e3"}, "days", "Expected `int`, got `str`"),
    ],
)
async def test_bad_report_parameters(
    client: httpx.AsyncClient, path: str, params: dict[str, str], field: str, problem: str
) -> None:
    response = await admin_get(client, path, **params)
    assert (response.status_code, response.json()) == (422, validation(field, problem))


async def test_patterns_rank_by_thumbs_down_then_rate(client: httpx.AsyncClient) -> None:
    alice, bob, carol = new_session(), new_session(), new_session()
    # "tank build": 3 down (2 sessions), 1 up; "healer": 3 down (3 sessions), 0 up;
    # "mage": 1 down; "bard": only up (not a pattern).
    for session, query, rating, comment in [
        (alice, "Tank  Build", "down", "wrong race"),
        (alice, "tank build", "down", None),
        (bob, "TANK build", "down", "outdated"),
        (carol, "tank build", "up", "fine"),
        (alice, "healer", "down", "a"),
        (bob, "healer", "down", "b"),
        (carol, "healer", "down", "c"),
        (carol, "healer", "down", "d"),
        (alice, "mage", "down", None),
        (alice, "bard", "up", "great"),
    ]:
        await send_feedback(client, session, query=query, rating=rating, comment=comment)
    body = await ok(client, "/admin/feedback/patterns", limit=10)
    stamps = [item.pop("last_at") for item in body["items"]]
    assert all(TIMESTAMP_RE.match(s) for s in stamps)
    assert body["items"] == [
        {
            "query": "healer",
            "down": 4,
            "up": 0,
            "down_rate": 1.0,
            "sessions": 3,
            "sample_comments": ["d", "c", "b"],
        },
        {
            "query": "tank build",
            "down": 3,
            "up": 1,
            "down_rate": 0.75,
            "sessions": 2,
            "sample_comments": ["outdated", "wrong race"],
        },
        {
            "query": "mage",
            "down": 1,
            "up": 0,
            "down_rate": 1.0,
            "sessions": 1,
            "sample_comments": [],
        },
    ]
    top = await ok(client, "/admin/feedback/patterns", limit=1)
    assert [i["query"] for i in top["items"]] == ["healer"]


async def record_search(client, query: str, session: str, results: int) -> None:
    response = await client.post(
        f"{API}/analytics/search",
        json={"query": query, "search_mode": "quick", "result_count": results},
        headers={"X-Session-ID": session},
    )
    assert response.status_code == 201


async def test_content_gaps_from_the_search_rollups(client: httpx.AsyncClient, app, valkey) -> None:
    a, b, c = new_session(), new_session(), new_session()
    for query, session, results in [
        ("Siege  engines", a, 0),
        ("siege engines", a, 0),
        ("siege engines", a, 0),
        ("node tax", b, 0),
        ("node tax", c, 0),
        ("siege engines", b, 7),  # found something: not a gap
        ("tank build", c, 3),
    ]:
        await record_search(client, query, session, results)
    assert (await ok(client, "/admin/insights/content-gaps"))["items"] == []  # not flushed
    await app.ctx.search.flush()
    # Served from the Valkey copy while it is fresh (the contract's flush interval + 60 s)...
    assert (await ok(client, "/admin/insights/content-gaps"))["items"] == []
    assert await valkey.ttl(keys.content_gaps(7)) > 0
    await valkey.delete(keys.content_gaps(7))  # ...and rebuilt once it is gone
    body = await ok(client, "/admin/insights/content-gaps")
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    at = hour.isoformat(timespec="milliseconds")
    assert body["items"] == [
        {"query": "node tax", "sessions": 2, "count": 2, "last_at": at},
        {"query": "siege engines", "sessions": 1, "count": 3, "last_at": at},
    ]
    one = await ok(client, "/admin/insights/content-gaps", limit=1)
    assert [i["query"] for i in one["items"]] == ["node tax"]


async def test_content_gaps_exact_beyond_the_first_candidates(
    client: httpx.AsyncClient, app, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query with fewer searches but more sessions than the first candidates still ranks
    first: the candidate set grows until the answer is exact (short and long windows)."""
    from service.insights import reports

    monkeypatch.setattr(reports, "FIRST_CANDIDATES", 1)
    monkeypatch.setattr(reports, "FIRST_PRUNED", 0)
    one = new_session()
    for _ in range(3):
        await record_search(client, "many searches", one, 0)
    for _ in range(2):
        await record_search(client, "many people", new_session(), 0)
    await record_search(client, "found", one, 4)
    await app.ctx.search.flush()
    for days in (7, 30):  # direct ranking, then pruned by the all-time totals
        top = await reports.content_gaps(days, 1)
        assert [(i.query, i.sessions, i.count) for i in top.items] == [("many people", 2, 2)]
    body = await ok(client, "/admin/insights/content-gaps", days=30)
    assert [(i["query"], i["sessions"], i["count"]) for i in body["items"]] == [
        ("many people", 2, 2),
        ("many searches", 1, 3),
    ]


async def test_long_window_patterns_pruned_by_all_time_totals(
    client: httpx.AsyncClient, sql, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above DIRECT_MAX_FEEDBACK in the window, patterns rank the all-time top candidates
    (feedback_queries, kept by the insert) first; a tie on thumbs-down with the bound grows
    the candidates (the down rate decides), so the answer equals the direct ranking."""
    from service.insights import reports

    for query, rating in (
        [("alpha", "down")] * 2
        + [("alpha", "up")] * 2
        + [
            ("beta", "down"),
            ("beta", "down"),
            ("gamma", "down"),
        ]
    ):
        await send_feedback(client, query=query, rating=rating)
    totals = await sql.fetch("SELECT query_norm, down, up FROM feedback_queries ORDER BY 1")
    assert [tuple(r) for r in totals] == [("alpha", 2, 2), ("beta", 2, 0), ("gamma", 1, 0)]
    direct = await reports.patterns(7, 1)
    monkeypatch.setattr(reports, "DIRECT_MAX_FEEDBACK", 0)
    monkeypatch.setattr(reports, "FIRST_PRUNED", 0)
    pruned = await reports.patterns(7, 1)
    assert pruned == direct
    assert [(i.query, i.down, i.down_rate) for i in pruned.items] == [("beta", 2, 1.0)]
    everything = await ok(client, "/admin/feedback/patterns", limit=5)
    assert [i["query"] for i in everything["items"]] == ["beta", "alpha", "gamma"]


async def test_patterns_served_from_a_copy(client: httpx.AsyncClient, valkey) -> None:
    """The patterns of a window are a Valkey copy (fresh for 60 s), rebuilt once it is gone."""
    await send_feedback(client, query="mage", rating="down")
    first = await ok(client, "/admin/feedback/patterns")
    assert [(i["query"], i["down"]) for i in first["items"]] == [("mage", 1)]
    await send_feedback(client, query="mage", rating="down")
    assert await ok(client, "/admin/feedback/patterns") == first
    assert await valkey.ttl(keys.feedback_patterns(7)) > 0
    await valkey.delete(keys.feedback_patterns(7))
    again = await ok(client, "/admin/feedback/patterns")
    assert [(i["query"], i["down"]) for i in again["items"]] == [("mage", 2)]


async def test_admin_reads_are_rate_limited_like_other_gets(
    stores, settings_overrides: dict[str, Any]
) -> None:
    from service.app import create_app
    from tests.apps import serving
    from tests.conftest import clean_stores, make_settings

    await clean_stores(stores)
    app = create_app(make_settings(stores, **SETTINGS, rate_limit_enabled=True, rate_limit_read=2))
    async with serving(app) as client:
        session = {"X-Session-ID": new_session()}
        codes = []
        for _ in range(3):
            r = await client.get(f"{API}/admin/feedback/summary", headers={**ADMIN, **session})
            codes.append(r.status_code)
        assert codes == [200, 200, 429]
        assert r.json()["error"] == "rate_limited"
        assert r.headers["X-RateLimit-Limit"] == "2"
