"""The monitoring signals tell the truth (issue 15): pending age is the age of the oldest event
not yet durable (not idle time), buffer fill counts bytes too, scrapes and probes are not
traffic and never reach the stores, and every series an alert or panel selects exists from the
start. Multi-worker merging: tests/test_metrics_workers.py; the alert rules:
tests/test_deploy_alerts.py; a real Prometheus: tests/test_prometheus.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from aggregators.search import SearchEvent
from aggregators.votes import Outcome, VoteAggregator
from service.app import create_app
from service.ctx import App
from service.http.observe import is_operational
from service.http.ratelimit import SCOPES, rules
from service.runtime.db import credentials
from service.telemetry import metrics
from service.telemetry.dependencies import Check, DependencyMonitor
from tests.apps import serving
from tests.conftest import Stores, clean_stores, make_settings
from tests.factories import API, create_build, new_session
from tests.faults import TcpProxy
from tests.scrape import Scrape, scrape
from tests.server import ServerProcess
from tests.test_metrics import FILL, PENDING_AGE, REQUESTS, UP, search

OPERATIONAL = ("/metrics", "/health", "/health/live", "/health/ready")
SESSION = "sess_" + "e" * 24


def event(query: str, age_s: float = 0.0) -> SearchEvent:
    return SearchEvent(query, query, "quick", 1, SESSION, time.time() - age_s)


async def eventually(check: Any, what: str, timeout_s: float = 20.0) -> None:
    """Await `check()` until it is true (state a worker updates in the background)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_pending_age_is_the_oldest_events_age_not_idle_time(client, app: App):
    search_agg = app.ctx.search
    # The last flush was 17 s ago (an idle worker; the old gauge read now - last_success),
    # then one event arrives: nothing has waited, the age is that event's.
    search_agg.stats.last_success = time.monotonic() - 17
    assert (await client.post(f"{API}/analytics/search", json=search("fresh"))).status_code == 201
    fresh = await scrape(client)
    assert 0 < fresh.value(PENDING_AGE, aggregator="search") < 5
    assert (await client.get("/health")).json()["checks"]["aggregators"]["last_flush_age_s"] < 5
    assert await search_agg.flush() == 1
    assert (await scrape(client)).value(PENDING_AGE, aggregator="search") == 0

    # An event that has waited 17 s (PostgreSQL was slow), and a fresh one behind it.
    assert search_agg.record(event("waiting", age_s=17))
    assert (await client.post(f"{API}/analytics/search", json=search("fresh"))).status_code == 201
    stale = await scrape(client)
    assert 17 <= stale.value(PENDING_AGE, aggregator="search") < 30
    health = (await client.get("/health")).json()["checks"]["aggregators"]
    assert health == {"buffered": 2, "last_flush_age_s": pytest.approx(17, abs=5)}

    assert await search_agg.flush() == 2
    assert (await scrape(client)).value(PENDING_AGE, aggregator="search") == 0
    health = (await client.get("/health")).json()["checks"]["aggregators"]
    assert health == {"buffered": 0, "last_flush_age_s": 0}


async def test_a_vote_waiting_on_its_commit_has_an_age_and_fills_the_queue(
    client, app: App, sql: asyncpg.Connection
):
    build = await create_build(client, new_session())
    votes = VoteAggregator(app.ctx.db, app.ctx.valkey, max_batch=10, max_pending=4)
    assert (votes.depth, votes.fill(), votes.oldest_pending_age_s()) == (0, 0, 0)
    blocker = sql.transaction()
    await blocker.start()
    await sql.execute("SELECT 1 FROM builds WHERE build_id = $1 FOR UPDATE", build["build_id"])
    submitted = asyncio.create_task(votes.submit(build["build_id"], new_session(), 5))
    flushing: asyncio.Task[int] | None = None
    try:
        await asyncio.sleep(0)  # let submit() queue its vote
        assert (votes.depth, votes.fill()) == (1, 0.25)
        assert votes.oldest_pending_age_s(time.monotonic() + 3) >= 3
        flushing = asyncio.create_task(votes.flush())
        deadline = time.monotonic() + 20
        async with app.ctx.db.acquire_connection() as conn:  # the batch waits on our row lock
            while not await conn.fetchval(WAITING_LOCKS):
                assert time.monotonic() < deadline, "the vote batch never waited on the lock"
                await asyncio.sleep(0.02)
        assert votes.depth == 1  # committing, not durable yet: still pending, still ageing
        assert votes.oldest_pending_age_s(time.monotonic() + 3) >= 3
    finally:
        await blocker.rollback()
    assert flushing is not None
    assert await flushing == 1
    assert (await submitted).outcome is Outcome.ACCEPTED
    assert (votes.depth, votes.fill(), votes.oldest_pending_age_s()) == (0, 0, 0)


WAITING_LOCKS = """
SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND datname = current_database()
"""


@pytest.mark.parametrize("query_length", [200, 500])
async def test_fill_reaches_1_where_the_buffer_refuses_whichever_cap_binds(
    client, app: App, query_length: int
):
    """Default caps (100,000 events, 64 MiB): long queries hit the byte cap first, at an event
    count the events-only gauge read as 0.706 (200 chars) or 0.433 (500 chars)."""
    search_agg = app.ctx.search
    query = "x" * query_length
    while search_agg.record(event(query)):
        pass
    full = await scrape(client)
    events_only = search_agg.depth / full.value(
        "myashes_aggregator_buffer_capacity", aggregator="search"
    )
    assert events_only < 0.75
    assert full.value(FILL, aggregator="search") >= 0.99
    refused = await client.post(f"{API}/analytics/search", json=search(query))
    assert refused.status_code == 503
    assert refused.json()["error"] == "service_unavailable"


async def test_scrapes_and_probes_are_not_traffic(client: httpx.AsyncClient):
    before = await scrape(client)
    for path in OPERATIONAL * 5:
        assert (await client.get(path)).status_code == 200
    assert (await client.get(f"{API}/builds")).status_code == 200
    after = await scrape(client)
    routes = after.label_values(REQUESTS, "route")
    assert not routes & set(OPERATIONAL), routes
    histogram = after.label_values("myashes_http_request_duration_seconds_count", "route")
    assert not histogram & set(OPERATIONAL)
    assert after.total(REQUESTS) - before.total(REQUESTS) == 1  # the API GET only
    assert after.value("myashes_http_requests_in_flight") == 0


@pytest.fixture
async def proxies(stores: Stores) -> AsyncIterator[tuple[TcpProxy, TcpProxy]]:
    postgres = TcpProxy.for_postgres(credentials(stores.database_url))
    valkey = TcpProxy.for_valkey(stores.valkey_url)
    await postgres.start()
    await valkey.start()
    yield postgres, valkey
    await postgres.stop()
    await valkey.stop()


def proxied_app(stores: Stores, postgres: TcpProxy, valkey: TcpProxy, **settings: Any) -> App:
    creds = credentials(stores.database_url)
    db = f"postgresql://{creds['user']}@127.0.0.1:{postgres.port}/{creds['database']}"
    valkey_db = stores.valkey_url.rsplit("/", 1)[-1]
    valkey_url = f"redis://127.0.0.1:{valkey.port}/{valkey_db}"
    return create_app(make_settings(stores, database_url=db, valkey_url=valkey_url, **settings))


async def test_a_flood_of_scrapes_and_probes_never_reaches_the_stores(
    stores: Stores, proxies: tuple[TcpProxy, TcpProxy]
):
    await clean_stores(stores)
    postgres, valkey = proxies
    # Background checks every 60 s: none falls inside the flood (the first ran at start).
    app = proxied_app(stores, postgres, valkey, health_check_interval_s=60.0)
    async with serving(app) as client:
        assert app.ctx.dependencies.checks == 1
        sent = (postgres.sent, valkey.sent)
        flood = ("/metrics", "/health/ready", "/health/live") * 100
        statuses = await asyncio.gather(*(client.get(path) for path in flood))
        assert {r.status_code for r in statuses} == {200}
        assert (postgres.sent, valkey.sent) == sent
        assert app.ctx.dependencies.checks == 1
        # /health (rate-limited, for people) checks afresh: the proxies do see that.
        assert (await client.get("/health")).json()["status"] == "ok"
        assert postgres.sent > sent[0]
        assert valkey.sent > sent[1]


async def test_readiness_and_gauges_follow_the_background_check(
    stores: Stores, proxies: tuple[TcpProxy, TcpProxy]
):
    await clean_stores(stores)
    postgres, valkey = proxies
    app = proxied_app(stores, postgres, valkey, health_check_interval_s=0.05)

    async def ready(status: int) -> bool:
        return (await client.get("/health/ready")).status_code == status

    async def up(dependency: str, value: int) -> bool:
        return (await scrape(client)).value(UP, dependency=dependency) == value

    async with serving(app) as client:
        assert await ready(200)
        postgres.cut()
        await eventually(lambda: ready(503), "readiness never saw PostgreSQL go")
        refused = await client.get("/health/ready")
        assert refused.json()["message"] == "PostgreSQL is unreachable"
        await eventually(lambda: up("postgres", 0), "postgres gauge never went to 0")
        assert await up("valkey", 1)
        valkey.cut()
        await eventually(lambda: up("valkey", 0), "valkey gauge never went to 0")
        assert (await client.get("/health/live")).status_code == 200
        postgres.restore()
        valkey.restore()
        await eventually(lambda: ready(200), "readiness never came back")
        await eventually(lambda: up("postgres", 1), "postgres gauge never went back to 1")
        await eventually(lambda: up("valkey", 1), "valkey gauge never went back to 1")
        # A hung PostgreSQL (connections open, no answers): a cancelled query takes ~30 s to
        # unwind there, the check still reports within its 2 s timeout.
        postgres.stall()
        await eventually(lambda: ready(503), "readiness never saw PostgreSQL hang", 15)
        assert (await client.get("/metrics")).status_code == 200
        postgres.restore()
        await eventually(lambda: ready(200), "readiness never came back after the stall", 60)


async def test_concurrent_checks_share_the_probe_in_flight():
    """A /health arriving during the background round waits for that probe, never reads it
    as down."""
    calls, answer = 0, asyncio.Event()

    async def slow() -> None:
        nonlocal calls
        calls += 1
        await answer.wait()

    monitor = DependencyMonitor({"db": slow}, interval_s=60, timeout_s=30)
    checks = [asyncio.create_task(monitor.check()) for _ in range(3)]
    await asyncio.sleep(0)  # all three are waiting on the probe
    answer.set()
    results = await asyncio.gather(*checks)
    assert calls == 1
    assert all(r["db"].ok for r in results), results
    assert (await monitor.check())["db"].ok
    assert calls == 2  # a later check probes afresh
    await monitor.stop()


async def test_a_probe_that_hangs_past_its_timeout_is_not_stacked():
    calls, unwound, ended = 0, asyncio.Event(), asyncio.Event()

    async def hangs() -> None:
        nonlocal calls
        calls += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await unwound.wait()  # like a query cancelled on a hung connection
            raise
        finally:
            ended.set()

    async def answers() -> None:
        pass

    monitor = DependencyMonitor({"db": hangs, "cache": answers}, interval_s=60, timeout_s=0.05)
    first = await monitor.check()
    assert first == {"db": Check(False, None, "TimeoutError"), "cache": first["cache"]}
    assert first["cache"].ok
    second = await monitor.check()  # the first probe has not unwound: no second one
    assert (second["db"], calls) == (Check(False, None, "TimeoutError"), 1)
    unwound.set()
    await ended.wait()  # the cancelled probe has ended
    third = await monitor.check()
    assert (third["db"].error, calls) == ("TimeoutError", 2)  # a new probe, timed out again
    await monitor.stop()


def api_routes(app: App) -> set[tuple[str, str]]:
    return {
        (method, "/" + route.path)
        for route in app.router.routes
        if not is_operational(route)
        for method in route.methods
    }


@pytest.mark.server
async def test_every_selected_series_exists_before_any_traffic(stores: Stores):
    """A fresh 2-worker server, scraped before its first request: every route has its 2xx,
    4xx and 5xx counters at 0, the limiter its categories x scopes, the aggregators their
    gauges, the dependencies their state (the dashboard's and the alerts' label sets)."""
    await clean_stores(stores)
    server = ServerProcess(stores.database_url, stores.valkey_url, RATE_LIMIT_ENABLED="true")
    await asyncio.to_thread(server.start)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as c:
            first = Scrape.parse((await c.get("/metrics")).text)
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 30)
    app = create_app(make_settings(stores))
    app.router.finalize()
    routes = api_routes(app)
    assert len(routes) >= 15
    for method, route in routes:
        for status_class in metrics.STATUS_CLASSES:
            labels = {"method": method, "route": route, "status_class": status_class}
            assert (REQUESTS, frozenset(labels.items())) in first.samples, labels
    assert first.total(REQUESTS) == 0
    for category in rules(app.ctx.settings):
        for scope in SCOPES:
            labels = {"category": category, "scope": scope}
            assert first.value("myashes_rate_limited_total", **labels) == 0
            assert ("myashes_rate_limited_total", frozenset(labels.items())) in first.samples
    assert first.value("myashes_rate_limit_fail_open_total") == 0
    for aggregator in metrics.AGGREGATORS:
        for name in (FILL, PENDING_AGE, "myashes_aggregator_events_rejected_total"):
            assert (name, frozenset({("aggregator", aggregator)})) in first.samples
    assert first.value(UP, dependency="postgres") == 1
    assert first.value(UP, dependency="valkey") == 1
    assert first.value("myashes_workers") == 2
