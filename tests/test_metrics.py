"""GET /metrics in-process: exact counts after known traffic (route templates, status classes,
business counters, aggregators), dependency gauges through an outage, METRICS_ENABLED=false.
Several workers: tests/test_metrics_workers.py.

Counters are process-wide, so each test compares a scrape after its traffic with one before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from aggregators.search import EVENT_OVERHEAD_BYTES
from service.app import create_app
from service.runtime.db import credentials
from service.telemetry import metrics
from tests.apps import serving
from tests.conftest import Stores, clean_stores, make_settings
from tests.factories import API, create_build, headers, new_session
from tests.faults import TcpProxy
from tests.scrape import scrape, scrape_until

REQUESTS = "myashes_http_requests_total"
PENDING_AGE = "myashes_aggregator_oldest_pending_age_seconds"
FILL = "myashes_aggregator_buffer_fill_ratio"
UP = "myashes_dependency_up"
DURATION_COUNT = "myashes_http_request_duration_seconds_count"
BUILD_ROUTE = "/api/v1/builds/<build_id:str>"
SEARCH_ROUTE = "/api/v1/analytics/search"


def search(query: str = "tank build", mode: str = "quick") -> dict[str, object]:
    return {"query": query, "search_mode": mode, "result_count": 3}


async def test_requests_are_counted_by_route_template_and_status_class(client: httpx.AsyncClient):
    before = await scrape(client)
    session = new_session()
    build = await create_build(client, session)
    for i in range(3):  # unknown ids: one template, never three raw paths
        assert (await client.get(f"{API}/builds/b_{i:08x}")).status_code == 404
    assert (await client.get(f"{API}/builds/{build['build_id']}")).status_code == 200
    for _ in range(2):
        assert (await client.get("/no/such/route")).status_code == 404
    assert (await client.request("BREW", "/no/such/route")).status_code in (404, 405)
    after = await scrape(client)

    def delta(method: str, route: str, status_class: str) -> float:
        labels = {"method": method, "route": route, "status_class": status_class}
        return after.minus(before, REQUESTS, **labels)

    assert delta("POST", "/api/v1/builds", "2xx") == 1
    assert delta("GET", BUILD_ROUTE, "4xx") == 3
    assert delta("GET", BUILD_ROUTE, "2xx") == 1
    assert delta("GET", "unmatched", "4xx") == 2
    assert delta("OTHER", "unmatched", "4xx") == 1  # label values stay a closed set
    assert after.minus(before, DURATION_COUNT, method="GET", route=BUILD_ROUTE) == 4
    assert after.minus(before, DURATION_COUNT, method="GET", route="unmatched") == 2
    routes = after.label_values(REQUESTS, "route")
    assert not any("b_" in route for route in routes), routes
    assert after.label_values(REQUESTS, "status_class") <= {"1xx", "2xx", "3xx", "4xx", "5xx"}


async def test_business_counters(client: httpx.AsyncClient):
    before = await scrape(client)
    owner, voter = new_session(), new_session()
    build = await create_build(client, owner)
    await create_build(client, owner, name="Second")
    vote_url = f"{API}/builds/{build['build_id']}/vote"
    assert (
        await client.post(vote_url, json={"rating": 5}, headers=headers(voter))
    ).status_code == 200
    again = await client.post(vote_url, json={"rating": 4}, headers=headers(voter))
    assert again.status_code == 409
    missing = await client.post(
        f"{API}/builds/b_00000000/vote", json={"rating": 1}, headers=headers(voter)
    )
    assert missing.status_code == 404
    for rating in ("up", "up", "down"):
        body = {"query": "q", "response_snippet": "a", "search_mode": "smart", "rating": rating}
        assert (await client.post(f"{API}/feedback", json=body)).status_code == 201
    for mode in ("quick", "quick", "quick", "deep"):
        assert (await client.post(f"{API}/analytics/search", json=search(mode=mode))).is_success
    assert (
        await client.post(f"{API}/analytics/search", json=search(mode="other"))
    ).status_code == 422
    after = await scrape(client)

    assert after.minus(before, "myashes_builds_created_total") == 2
    assert after.minus(before, "myashes_votes_total", outcome="accepted") == 1
    assert after.minus(before, "myashes_votes_total", outcome="duplicate") == 1
    assert after.minus(before, "myashes_votes_total", outcome="not_found") == 1
    assert after.minus(before, "myashes_feedback_total", rating="up") == 2
    assert after.minus(before, "myashes_feedback_total", rating="down") == 1
    assert after.minus(before, "myashes_searches_recorded_total", mode="quick") == 3
    assert after.minus(before, "myashes_searches_recorded_total", mode="deep") == 1
    assert after.minus(before, "myashes_searches_recorded_total", mode="smart") == 0


async def test_aggregator_counters_follow_the_buffer_and_the_flush(client, app):
    before = await scrape(client)
    for i in range(5):
        assert (await client.post(f"{API}/analytics/search", json=search(f"q{i}"))).is_success
    buffered = await scrape(client)
    assert (
        buffered.minus(before, "myashes_aggregator_events_accepted_total", aggregator="search") == 5
    )
    assert (
        buffered.minus(before, "myashes_aggregator_events_flushed_total", aggregator="search") == 0
    )
    assert buffered.value("myashes_aggregator_buffer_depth", aggregator="search") == 5
    assert buffered.value(PENDING_AGE, aggregator="search") > 0
    assert buffered.value("myashes_aggregator_buffer_capacity", aggregator="search") == 100_000
    byte_fill = 5 * (EVENT_OVERHEAD_BYTES + 2 * len("q0")) / (64 * 1024 * 1024)
    assert buffered.value(FILL, aggregator="search") == pytest.approx(max(5 / 100_000, byte_fill))
    assert buffered.value("myashes_aggregator_flush_interval_seconds", aggregator="search") == 3600

    assert await app.ctx.search.flush() == 5
    flushed = await scrape(client)
    assert (
        flushed.minus(before, "myashes_aggregator_events_flushed_total", aggregator="search") == 5
    )
    assert flushed.value("myashes_aggregator_buffer_depth", aggregator="search") == 0
    assert flushed.value(PENDING_AGE, aggregator="search") == 0
    assert flushed.value(FILL, aggregator="search") == 0
    flushes = "myashes_aggregator_flush_duration_seconds_count"
    assert flushed.minus(before, flushes, aggregator="search") == 1
    assert (
        flushed.minus(before, "myashes_aggregator_flush_failures_total", aggregator="search") == 0
    )


@pytest.mark.parametrize("settings_overrides", [{"search_buffer_max_events": 2}], indirect=True)
async def test_a_full_buffer_counts_rejections_and_5xx(client: httpx.AsyncClient):
    before = await scrape(client)
    statuses = [
        (await client.post(f"{API}/analytics/search", json=search(f"q{i}"))).status_code
        for i in range(3)
    ]
    assert statuses == [201, 201, 503]
    after = await scrape(client)
    assert after.minus(before, "myashes_aggregator_events_rejected_total", aggregator="search") == 1
    assert after.minus(before, "myashes_aggregator_events_accepted_total", aggregator="search") == 2
    assert after.minus(before, "myashes_searches_recorded_total", mode="quick") == 2
    labels = {"method": "POST", "route": SEARCH_ROUTE}
    assert after.minus(before, REQUESTS, status_class="5xx", **labels) == 1
    assert after.minus(before, REQUESTS, status_class="2xx", **labels) == 2


async def test_gauges_in_flight_pool_and_dependencies(client: httpx.AsyncClient):
    assert (await client.get("/health")).status_code == 200
    now = await scrape(client)
    assert now.value("myashes_http_requests_in_flight") == 0  # a scrape is not traffic
    assert now.value("myashes_workers") == 1
    assert now.value("myashes_db_pool_connections_max") == 20  # db_pool_max of the tests
    assert 0 <= now.value("myashes_db_pool_connections_in_use") <= 20
    for dependency in ("postgres", "valkey"):
        assert now.value("myashes_dependency_up", dependency=dependency) == 1
        assert now.value("myashes_dependency_check_duration_seconds", dependency=dependency) > 0


@pytest.fixture
async def pg_proxy(stores: Stores) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy.for_postgres(credentials(stores.database_url))
    await proxy.start()
    yield proxy
    await proxy.stop()


async def test_postgres_outage_shows_as_down_failures_and_flush_age(
    stores: Stores, pg_proxy: TcpProxy
):
    await clean_stores(stores)
    creds = credentials(stores.database_url)
    database_url = f"postgresql://{creds['user']}@127.0.0.1:{pg_proxy.port}/{creds['database']}"
    app = create_app(make_settings(stores, database_url=database_url, health_check_interval_s=0.05))
    async with serving(app) as client:
        before = await scrape(client)
        pg_proxy.cut()
        for i in range(3):
            assert (await client.post(f"{API}/analytics/search", json=search(f"q{i}"))).is_success
        for _ in range(2):
            with pytest.raises(Exception):  # noqa: B017, PT011 - any driver error
                await app.ctx.search.flush()
        # The scrape runs no checks; the worker's background check notices the outage.
        down = await scrape_until(client, lambda s: s.value(UP, dependency="postgres") == 0)
        assert down.value("myashes_dependency_up", dependency="postgres") == 0
        assert down.value("myashes_dependency_up", dependency="valkey") == 1
        failures = "myashes_aggregator_flush_failures_total"
        assert down.minus(before, failures, aggregator="search") == 2
        assert down.value("myashes_aggregator_buffer_depth", aggregator="search") == 3
        assert down.value(PENDING_AGE, aggregator="search") > 0

        pg_proxy.restore()
        assert await app.ctx.search.flush() == 3
        up = await scrape_until(client, lambda s: s.value(UP, dependency="postgres") == 1)
        assert up.value("myashes_dependency_up", dependency="postgres") == 1
        assert up.minus(before, "myashes_aggregator_events_flushed_total", aggregator="search") == 3
        assert up.value(PENDING_AGE, aggregator="search") == 0


@pytest.mark.parametrize("settings_overrides", [{"metrics_enabled": False}], indirect=True)
async def test_metrics_disabled_removes_the_endpoint_and_the_recording(client: httpx.AsyncClient):
    def count() -> float:
        labels = {"method": "POST", "route": SEARCH_ROUTE, "status_class": "2xx"}
        return metrics.REGISTRY.get_sample_value(REQUESTS, labels) or 0.0

    before = count()
    r = await client.post(f"{API}/analytics/search", json=search())
    assert r.status_code == 201
    assert r.headers["X-Request-ID"]  # request ids and access lines stay on
    assert count() == before
    missing = await client.get("/metrics")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
