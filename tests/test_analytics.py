"""Search analytics: buffered recording, exact flush rows and rollups, popular queries."""

from __future__ import annotations

import time

import pytest

from aggregators import keys
from aggregators import popular as popular_module
from aggregators.popular import SCORE_SHIFT, SEPARATOR
from aggregators.search import SearchAggregator, SearchEvent

SESSION_A = "sess_" + "a" * 24
SESSION_B = "sess_" + "b" * 24
SESSION_C = "sess_" + "c" * 24


async def record(client, query, mode="quick", session=SESSION_A, result_count=3):
    r = await client.post(
        "/api/v1/analytics/search",
        json={"query": query, "search_mode": mode, "result_count": result_count},
        headers={"X-Session-ID": session},
    )
    return r


async def test_record_is_buffered_until_flush(client, app, sql):
    r = await record(client, "Tank  Build")
    assert r.status_code == 201
    assert r.json() == {"recorded": True}
    assert r.headers["x-session-id"] == SESSION_A
    assert await sql.fetchval("SELECT count(*) FROM search_events") == 0
    assert app.ctx.search.depth == 1
    assert await app.ctx.search.flush() == 1
    assert app.ctx.search.depth == 0
    assert await sql.fetchval("SELECT count(*) FROM search_events") == 1


async def test_flush_writes_exact_rows_and_rollups(client, app, sql):
    for query, session in [
        ("Tank  Build", SESSION_A),
        ("tank build", SESSION_B),
        (" TANK build ", SESSION_A),
        ("healer", SESSION_C),
    ]:
        assert (await record(client, query, session=session)).status_code == 201
    assert (await record(client, "tank build", mode="deep", session=SESSION_C)).status_code == 201
    assert await app.ctx.search.flush() == 5

    events = await sql.fetch(
        "SELECT query, query_norm, search_mode, result_count, session_id FROM search_events "
        "ORDER BY id"
    )
    assert [tuple(e) for e in events] == [
        ("Tank  Build", "tank build", "quick", 3, SESSION_A),
        ("tank build", "tank build", "quick", 3, SESSION_B),
        (" TANK build ", "tank build", "quick", 3, SESSION_A),
        ("healer", "healer", "quick", 3, SESSION_C),
        ("tank build", "tank build", "deep", 3, SESSION_C),
    ]
    hour = int(time.time() // 3600) * 3600
    rollups = await sql.fetch(
        "SELECT extract(epoch FROM hour)::bigint AS hour, query_norm, search_mode, count, "
        "sessions FROM search_rollups ORDER BY query_norm, search_mode"
    )
    assert [tuple(r) for r in rollups] == [
        (hour, "healer", "quick", 1, 1),
        (hour, "tank build", "deep", 1, 1),
        (hour, "tank build", "quick", 3, 2),
    ]
    assert await sql.fetchval("SELECT count(*) FROM search_rollup_sessions") == 4
    log = await sql.fetch("SELECT events FROM flush_log")
    assert [r["events"] for r in log] == [5]
    batch_ids = await sql.fetch("SELECT DISTINCT batch_id FROM search_events")
    assert len(batch_ids) == 1


async def test_rollups_bucket_by_event_time_and_accumulate(app, sql):
    aggregator: SearchAggregator = app.ctx.search
    base = (int(time.time() // 3600) - 5) * 3600  # five hours ago, on the hour
    for at, session in [(base + 10, SESSION_A), (base + 3599, SESSION_B), (base + 3600, SESSION_A)]:
        assert aggregator.record(SearchEvent("q", "q", "smart", 0, session, at))
    assert await aggregator.flush() == 3
    assert aggregator.record(SearchEvent("q", "q", "smart", 0, SESSION_C, base + 20))
    assert aggregator.record(SearchEvent("q", "q", "smart", 0, SESSION_A, base + 30))
    assert await aggregator.flush() == 2
    rows = await sql.fetch(
        "SELECT extract(epoch FROM hour)::bigint AS hour, count, sessions FROM search_rollups "
        "ORDER BY hour"
    )
    # Hour 1: A, B, then C and A again -> 4 events, 3 distinct sessions. Hour 2: A once.
    assert [tuple(r) for r in rows] == [(base, 4, 3), (base + 3600, 1, 1)]


class LostReply(SearchAggregator):
    """Commits, then fails as if the reply was lost: the next flush retries the same batch."""

    fail_next = True

    async def _write(self, batch):
        await super()._write(batch)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionResetError("reply lost after commit")


async def test_retried_batch_after_commit_is_not_counted_twice(app, sql):
    aggregator = LostReply(app.ctx.db, interval_s=3600, max_events=100, max_bytes=10**6)
    for session in (SESSION_A, SESSION_B, SESSION_A):
        assert aggregator.record(SearchEvent("mage", "mage", "quick", 1, session, time.time()))
    with pytest.raises(ConnectionResetError):
        await aggregator.flush()
    assert aggregator.depth == 3  # the batch is kept, with its id
    assert aggregator.stats.failures == 1
    assert await aggregator.flush() == 3
    assert aggregator.depth == 0
    assert await sql.fetchval("SELECT count(*) FROM search_events") == 3
    assert [tuple(r) for r in await sql.fetch("SELECT count, sessions FROM search_rollups")] == [
        (3, 2)
    ]
    assert await sql.fetchval("SELECT count(*) FROM flush_log") == 1


async def test_blank_and_invalid_events_are_rejected(client, app):
    cases = [
        ({"query": "   ", "search_mode": "quick", "result_count": 1}, "query"),
        ({"query": "", "search_mode": "quick", "result_count": 1}, "query"),
        ({"query": "x" * 501, "search_mode": "quick", "result_count": 1}, "query"),
        ({"query": "ok", "search_mode": "Quick", "result_count": 1}, "search_mode"),
        ({"query": "ok", "search_mode": "quick", "result_count": -1}, "result_count"),
        ({"query": "ok", "search_mode": "quick", "result_count": 1.5}, "result_count"),
        ({"query": "ok", "search_mode": "quick"}, "result_count"),
    ]
    for body, field in cases:
        r = await client.post("/api/v1/analytics/search", json=body)
        assert r.status_code == 422, body
        payload = r.json()
        assert payload["error"] == "validation_error"
        assert payload["status"] == 422
        assert payload["details"][0]["field"] == field, body
    assert app.ctx.search.depth == 0


@pytest.mark.parametrize("settings_overrides", [{"search_buffer_max_events": 3}], indirect=True)
async def test_full_buffer_answers_503_with_retry_after(client, app, sql):
    for i in range(3):
        assert (await record(client, f"q{i}")).status_code == 201
    r = await record(client, "one too many")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json() == {
        "error": "service_unavailable",
        "message": "Analytics buffer is full; retry later",
        "status": 503,
    }
    assert app.ctx.search.stats.rejected == 1
    # The refusal also wakes the aggregator's loop for an early flush, so the three may be
    # written by that loop or by this call (flushes are serialised): count rows, not returns.
    await app.ctx.search.flush()
    assert await sql.fetchval("SELECT count(*) FROM search_events") == 3
    assert app.ctx.search.depth == 0
    assert (await record(client, "fits again")).status_code == 201
    await app.ctx.search.flush()
    assert await sql.fetchval("SELECT count(*) FROM search_events") == 4


@pytest.mark.parametrize("settings_overrides", [{"analytics_write_through": True}], indirect=True)
async def test_write_through_mode_persists_before_answering(client, app, sql):
    assert (await record(client, "paladin")).status_code == 201
    assert app.ctx.search.depth == 0
    assert await sql.fetchval("SELECT query_norm FROM search_events") == "paladin"
    assert await sql.fetchval("SELECT count FROM search_rollups") == 1


async def popular(client, **params):
    r = await client.get("/api/v1/analytics/popular-queries", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_popular_queries_ranking_and_valkey_set(client, app, valkey):
    searches = [
        ("tank build", SESSION_A),
        ("Tank Build", SESSION_B),
        ("TANK  BUILD", SESSION_C),
        ("healer", SESSION_A),
        ("healer", SESSION_A),
        ("healer", SESSION_A),
        ("healer", SESSION_B),
        ("zerg", SESSION_C),
        ("alpha", SESSION_C),
    ]
    for query, session in searches:
        assert (await record(client, query, session=session)).status_code == 201
    await app.ctx.search.flush()

    body = await popular(client)
    assert body == {
        "period_days": 7,
        "queries": [
            # One client network (the test client): sessions decide.
            {
                "query": "tank build",
                "count": 3,
                "sessions": 3,
                "sources": 1,
                "search_mode": "quick",
            },
            {"query": "healer", "count": 4, "sessions": 2, "sources": 1, "search_mode": "quick"},
            {"query": "alpha", "count": 1, "sessions": 1, "sources": 1, "search_mode": "quick"},
            {"query": "zerg", "count": 1, "sessions": 1, "sources": 1, "search_mode": "quick"},
        ],
    }
    key = keys.popular_queries(7, None)
    assert 0 < await valkey.ttl(key) <= keys.VIEW_KEEP_S
    members = dict(await valkey.zrange(key, 0, -1, withscores=True))
    assert abs(members.pop(keys.POPULAR_BUILT_MARKER) - time.time()) < 10  # when it was built
    # member: mode, count, query; score: sources * 2**32 + sessions
    assert members == {
        f"quick{SEPARATOR}3{SEPARATOR}tank build": float(1 * SCORE_SHIFT + 3),
        f"quick{SEPARATOR}4{SEPARATOR}healer": float(1 * SCORE_SHIFT + 2),
        f"quick{SEPARATOR}1{SEPARATOR}alpha": float(1 * SCORE_SHIFT + 1),
        f"quick{SEPARATOR}1{SEPARATOR}zerg": float(1 * SCORE_SHIFT + 1),
    }
    assert (await popular(client, limit=2))["queries"][1]["query"] == "healer"
    assert app.ctx.popular.view.rebuilds == 1  # the second read was served from Valkey


async def _age(valkey, key: str, seconds: float) -> None:
    """Make the stored copy look `seconds` old (its marker member holds the build time)."""
    await valkey.zadd(key, {keys.POPULAR_BUILT_MARKER: time.time() - seconds})


async def test_popular_queries_fresh_copy_is_served_and_a_missing_one_rebuilt(client, app, valkey):
    await record(client, "first")
    await app.ctx.search.flush()
    assert [q["query"] for q in (await popular(client))["queries"]] == ["first"]
    await record(client, "second", session=SESSION_B)
    await app.ctx.search.flush()
    # A copy younger than the refresh age is served as it is ...
    assert [q["query"] for q in (await popular(client))["queries"]] == ["first"]
    assert app.ctx.popular.view.rebuilds == 1
    # ... and a missing one is rebuilt from Postgres.
    await valkey.delete(keys.popular_queries(7, None))
    assert [q["query"] for q in (await popular(client))["queries"]] == ["first", "second"]


async def test_popular_queries_copy_past_the_freshness_bound_is_never_served(client, app, valkey):
    await record(client, "first")
    await app.ctx.search.flush()
    await popular(client)
    await record(client, "second", session=SESSION_B)
    await app.ctx.search.flush()
    await _age(valkey, keys.popular_queries(7, None), keys.VIEW_FRESH_S + 1)
    assert [q["query"] for q in (await popular(client))["queries"]] == ["first", "second"]


async def test_popular_queries_refresh_in_background_by_one_worker(client, app, valkey):
    key = keys.popular_queries(7, None)
    await record(client, "first")
    await app.ctx.search.flush()
    await popular(client)
    await record(client, "second", session=SESSION_B)
    await app.ctx.search.flush()
    # Another worker holds the rebuild lock: the aging copy is served, nothing rebuilt here.
    await _age(valkey, key, keys.VIEW_REFRESH_AFTER_S + 1)
    await valkey.set(keys.view_lock(key), "1", ex=30)
    assert [q["query"] for q in (await popular(client))["queries"]] == ["first"]
    await app.ctx.popular.view.close()
    assert app.ctx.popular.view.rebuilds == 1
    # Lock free: the reader still gets the copy at once, and this worker refreshes it.
    await valkey.delete(keys.view_lock(key))
    assert [q["query"] for q in (await popular(client))["queries"]] == ["first"]
    await app.ctx.popular.view.close()
    assert app.ctx.popular.view.rebuilds == 2
    assert await valkey.exists(keys.view_lock(key)) == 1  # expires on its own
    assert [q["query"] for q in (await popular(client))["queries"]] == ["first", "second"]


async def test_pruned_ranking_is_exact_when_the_busiest_queries_are_not_the_widest(
    app, monkeypatch
):
    monkeypatch.setattr(keys, "POPULAR_TOP_N", 2)
    monkeypatch.setattr(popular_module, "FIRST_CANDIDATES", 2)
    aggregator: SearchAggregator = app.ctx.search
    now = time.time()
    plan = {
        "busy": [SESSION_A] * 10,
        "busier": [SESSION_B] * 11,
        "wide": [f"sess_{i:024x}" for i in range(3)],
        "wider": [f"sess_{i:024x}" for i in range(4)],
    }
    for query, sessions in plan.items():
        for session in sessions:
            aggregator.record(SearchEvent(query, query, "quick", 0, session, now))
    await aggregator.flush()
    rows = await app.ctx.popular.query_postgres(7, None)
    assert [(r.query, r.sessions, r.count) for r in rows] == [("wider", 4, 4), ("wide", 3, 3)]


async def test_popular_queries_mode_filter_and_window(app, client):
    aggregator: SearchAggregator = app.ctx.search
    now = time.time()
    aggregator.record(SearchEvent("old", "old", "deep", 0, SESSION_A, now - 10 * 86400))
    aggregator.record(SearchEvent("new", "new", "deep", 0, SESSION_A, now))
    aggregator.record(SearchEvent("new", "new", "smart", 0, SESSION_B, now))
    await aggregator.flush()
    assert [q["query"] for q in (await popular(client, search_mode="deep"))["queries"]] == ["new"]
    month = await popular(client, search_mode="deep", days=30)
    assert month["period_days"] == 30
    assert [(q["query"], q["search_mode"]) for q in month["queries"]] == [
        ("new", "deep"),
        ("old", "deep"),
    ]
    both = await popular(client)
    assert [(q["query"], q["search_mode"]) for q in both["queries"]] == [
        ("new", "deep"),
        ("new", "smart"),
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"days": 0}, "days"),
        ({"days": 91}, "days"),
        ({"limit": 0}, "limit"),
        ({"limit": 51}, "limit"),
        ({"search_mode": "fast"}, "search_mode"),
        ({"days": "x"}, "days"),
    ],
)
async def test_popular_queries_rejects_bad_parameters(client, params, field):
    r = await client.get("/api/v1/analytics/popular-queries", params=params)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error"
    assert body["details"][0]["field"] == field


async def test_rollups_keep_zero_result_searches_and_their_sessions(client, app, sql):
    """Content gaps: per key, the searches that found nothing and their distinct sessions,
    accumulated across flushes like count/sessions; other searches leave them alone."""
    for query, session, found in [
        ("Siege  engines", SESSION_A, 0),
        ("siege engines", SESSION_A, 0),
        ("siege engines", SESSION_B, 4),
        ("healer", SESSION_C, 2),
    ]:
        r = await record(client, query, session=session, result_count=found)
        assert r.status_code == 201
    assert await app.ctx.search.flush() == 4
    assert (await record(client, "SIEGE engines", session=SESSION_C, result_count=0)).is_success
    assert (await record(client, "siege engines", session=SESSION_A, result_count=0)).is_success
    assert await app.ctx.search.flush() == 2
    rollups = await sql.fetch(
        "SELECT query_norm, count, sessions, zero_count, zero_sessions FROM search_rollups"
        " ORDER BY query_norm"
    )
    assert [tuple(r) for r in rollups] == [("healer", 1, 1, 0, 0), ("siege engines", 5, 3, 4, 2)]
    # 3 sessions under siege engines' key, 2 under its zero key, 1 under healer's.
    assert await sql.fetchval("SELECT count(*) FROM search_rollup_sessions") == 6
    totals = await sql.fetch("SELECT query_norm, count FROM search_zero_queries")
    assert [tuple(r) for r in totals] == [("siege engines", 4)]
