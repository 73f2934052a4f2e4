"""Store outages: Postgres down (buffer to the cap, 503 after, nothing lost or doubled) and
Valkey down (reads from Postgres, projections heal). Stores sit behind a cuttable proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from aggregators import keys
from service.runtime.db import credentials
from tests.faults import TcpProxy

SESSION = "sess_" + "d" * 24
CAP = 20


@pytest.fixture
async def pg_proxy(stores) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy.for_postgres(credentials(stores.database_url))
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def valkey_proxy(stores) -> AsyncIterator[TcpProxy]:
    url = stores.valkey_url.removeprefix("redis://")
    hostport, _, _ = url.partition("/")
    host, _, port = hostport.rpartition(":")
    proxy = TcpProxy(host=host, port=int(port))
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def settings_overrides(request, stores, pg_proxy, valkey_proxy):
    creds = credentials(stores.database_url)
    db = creds["database"]
    valkey_db = stores.valkey_url.rsplit("/", 1)[-1]
    return {
        "database_url": f"postgresql://{creds['user']}@127.0.0.1:{pg_proxy.port}/{db}",
        "valkey_url": f"redis://127.0.0.1:{valkey_proxy.port}/{valkey_db}",
        "search_buffer_max_events": CAP,
    }


async def record(client, i):
    return await client.post(
        "/api/v1/analytics/search",
        json={"query": f"query {i % 3}", "search_mode": "quick", "result_count": i},
        headers={"X-Session-ID": SESSION},
    )


async def test_postgres_outage_buffers_to_the_cap_and_loses_nothing(client, app, sql, pg_proxy):
    assert (await client.get("/health/ready")).status_code == 200
    pg_proxy.cut()
    statuses = [(await record(client, i)).status_code for i in range(CAP + 5)]
    assert statuses == [201] * CAP + [503] * 5
    for _ in range(3):  # retries while down keep the same batch
        with pytest.raises(Exception):  # noqa: B017, PT011 - any driver error
            await app.ctx.search.flush()
    assert app.ctx.search.depth == CAP
    health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "down"
    assert health.json()["checks"]["aggregators"]["buffered"] == CAP
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["error"] == "service_unavailable"
    # Requests that need Postgres answer 503 in the contract shape, never 500.
    r = await client.get("/api/v1/builds/b_00000000")
    assert r.status_code == 503
    assert r.json()["error"] == "service_unavailable"
    assert "retry-after" in r.headers

    pg_proxy.restore()
    assert await app.ctx.search.flush() == CAP
    assert await app.ctx.search.flush() == 0
    assert await sql.fetchval("SELECT count(*) FROM search_events") == CAP
    assert await sql.fetchval("SELECT sum(count) FROM search_rollups") == CAP
    assert await sql.fetchval("SELECT count(*) FROM flush_log") == 1
    assert (await record(client, 99)).status_code == 201
    assert (await client.get("/health")).json()["status"] == "ok"


async def test_vote_while_postgres_is_down_is_503_and_not_stored(client, app, sql, pg_proxy):
    r = await client.post(
        "/api/v1/builds",
        json={
            "name": "b",
            "primary_archetype": "mage",
            "secondary_archetype": "mage",
            "race": "vek",
        },
    )
    build_id = r.json()["build_id"]
    pg_proxy.cut()
    r = await client.post(
        f"/api/v1/builds/{build_id}/vote", json={"rating": 5}, headers={"X-Session-ID": SESSION}
    )
    assert r.status_code == 503
    assert r.json()["error"] == "service_unavailable"
    pg_proxy.restore()
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0
    r = await client.post(
        f"/api/v1/builds/{build_id}/vote", json={"rating": 5}, headers={"X-Session-ID": SESSION}
    )
    assert r.status_code == 200


async def test_valkey_outage_reads_from_postgres_and_projections_heal(
    client, app, valkey, valkey_proxy
):
    r = await client.post(
        "/api/v1/builds",
        json={
            "name": "b",
            "primary_archetype": "bard",
            "secondary_archetype": "bard",
            "race": "vek",
        },
    )
    build_id = r.json()["build_id"]
    await record(client, 1)
    await app.ctx.search.flush()

    valkey_proxy.cut()
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["checks"]["valkey"]["ok"] is False
    popular = await client.get("/api/v1/analytics/popular-queries")
    assert popular.status_code == 200
    assert popular.json()["queries"] == [
        {"query": "query 1", "count": 1, "sessions": 1, "sources": 1, "search_mode": "quick"}
    ]
    assert (await client.get(f"/api/v1/builds/{build_id}")).status_code == 200
    assert (await client.get("/api/v1/builds")).status_code == 200
    r = await client.post(
        f"/api/v1/builds/{build_id}/vote", json={"rating": 3}, headers={"X-Session-ID": SESSION}
    )
    assert r.status_code == 200
    assert r.json()["vote_count"] == 1

    valkey_proxy.restore()
    assert await valkey.exists(keys.rating(build_id)) == 0
    await app.ctx.votes.flush()  # the loop's next tick: re-projects what it missed
    assert await valkey.hgetall(keys.rating(build_id)) == {"rating_sum": "3", "vote_count": "1"}
    assert (await client.get("/api/v1/analytics/popular-queries")).status_code == 200
    assert await valkey.exists(keys.popular_queries(7, None)) == 1


async def test_connection_lost_mid_batch_is_503_not_500(client, app, sql):
    """asyncpg raises InterfaceError when the connection dies inside the transaction."""
    r = await client.post(
        "/api/v1/builds",
        json={
            "name": "b",
            "primary_archetype": "rogue",
            "secondary_archetype": "bard",
            "race": "vek",
        },
    )
    build_id = r.json()["build_id"]
    votes = app.ctx.votes

    async def connection_lost(batch, conn):
        raise asyncpg.InterfaceError(
            "cannot call Transaction.__aexit__(): the underlying connection is closed"
        )

    votes._write = connection_lost  # fault injection into our own aggregator, not the store
    r = await client.post(
        f"/api/v1/builds/{build_id}/vote", json={"rating": 4}, headers={"X-Session-ID": SESSION}
    )
    assert r.status_code == 503
    assert r.json() == {
        "error": "service_unavailable",
        "message": "Vote could not be stored right now; retry later",
        "status": 503,
    }
    assert r.headers["retry-after"] == "2"
    assert votes.stats.failures == 1
    del votes._write
    r = await client.post(
        f"/api/v1/builds/{build_id}/vote", json={"rating": 4}, headers={"X-Session-ID": SESSION}
    )
    assert r.status_code == 200
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 1
