"""Rate limits per session and per client IP, counted in Valkey (shared by workers and pods)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from service.ctx import App
from service.http import ratelimit
from service.http.rate_counter import KEY_PREFIX, Limit, RateCounter
from tests.conftest import Stores, clean_stores
from tests.factories import API, SESSION_RE, build_body, error, headers, new_session
from tests.server import ServerProcess

LIMITS = {
    "rate_limit_enabled": True,
    "rate_limit_build_create": 2,
    "rate_limit_vote": 2,
    "rate_limit_feedback": 2,
    "rate_limit_analytics": 2,
    "rate_limit_read": 3,
    "rate_limit_edit": 2,
    "rate_limit_ip_multiplier": 2,
}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(getattr(request, "param", LIMITS))


def client_at(app: App, ip: str, **extra: Any) -> httpx.AsyncClient:
    """A client whose requests arrive from the socket address `ip`."""
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", **extra)


def limit_headers(response: httpx.Response) -> tuple[int, int, int]:
    h = response.headers
    return int(h["X-RateLimit-Limit"]), int(h["X-RateLimit-Remaining"]), int(h["X-RateLimit-Reset"])


def rate_limited(what: str, limit: int, scope: str) -> dict[str, Any]:
    message = f"Rate limit exceeded for {what}: {limit} per minute per {scope}"
    return error("rate_limited", message, 429)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_session_limit_counts_down_then_429(client: httpx.AsyncClient) -> None:
    session = new_session()
    seen = []
    for _ in range(3):
        response = await client.get(f"{API}/builds", headers=headers(session))
        assert response.status_code == 200
        limit, remaining, reset = limit_headers(response)
        seen.append((limit, remaining))
        assert 60 <= reset <= 120  # a hit weighs on the sliding window for up to 2 minutes
    assert seen == [(3, 2), (3, 1), (3, 0)]
    before = sample("myashes_rate_limited_total", category="read", scope="session")
    refused = await client.get(f"{API}/builds", headers=headers(session))
    assert refused.status_code == 429
    assert refused.json() == rate_limited("reading", 3, "session")
    assert refused.headers["X-Session-ID"] == session
    assert 55 <= int(refused.headers["Retry-After"]) <= 61
    assert limit_headers(refused)[:2] == (3, 0)
    assert sample("myashes_rate_limited_total", category="read", scope="session") == before + 1
    # Another session from the same address has its own budget; the IP's (6) is shared and
    # has 4 hits now: the request its session refused was not counted against the IP.
    other = await client.get(f"{API}/builds", headers=headers(new_session()))
    assert (other.status_code, limit_headers(other)[:2]) == (200, (3, 2))
    after = await client.get(f"{API}/builds", headers=headers(new_session()))
    assert limit_headers(after)[:2] == (6, 1)


async def test_ip_limit_caps_many_sessions(app: App) -> None:
    async with client_at(app, "198.51.100.7") as one, client_at(app, "198.51.100.8") as two:
        for _ in range(6):  # 3 per session x 2 = 6 per IP
            response = await one.get(f"{API}/builds/templates", headers=headers(new_session()))
            assert response.status_code == 200
        refused = await one.get(f"{API}/builds/templates", headers=headers(new_session()))
        assert refused.status_code == 429
        assert refused.json() == rate_limited("reading", 6, "ip")
        no_session = await one.get(f"{API}/builds/templates")
        assert no_session.status_code == 429
        assert SESSION_RE.match(no_session.headers["X-Session-ID"])
        elsewhere = await two.get(f"{API}/builds/templates")
        assert (elsewhere.status_code, limit_headers(elsewhere)[:2]) == (200, (6, 5))


async def test_reported_window_is_the_one_closest_to_running_out(app: App) -> None:
    async with client_at(app, "198.51.100.9") as http:
        for _ in range(4):
            await http.get(f"{API}/builds/popular", headers=headers(new_session()))
        # A fresh session has 3 left, its IP only 2: the IP's window is reported.
        response = await http.get(f"{API}/builds/popular", headers=headers(new_session()))
        assert limit_headers(response)[:2] == (6, 1)


async def _create(client: httpx.AsyncClient, session: str) -> httpx.Response:
    return await client.post(f"{API}/builds", json=build_body(), headers=headers(session))


async def _feedback(client: httpx.AsyncClient, session: str) -> httpx.Response:
    body = {"query": "q", "response_snippet": "a", "search_mode": "quick", "rating": "up"}
    return await client.post(f"{API}/feedback", json=body, headers=headers(session))


async def _search(client: httpx.AsyncClient, session: str) -> httpx.Response:
    body = {"query": "tank build", "search_mode": "deep", "result_count": 3}
    return await client.post(f"{API}/analytics/search", json=body, headers=headers(session))


@pytest.mark.parametrize(
    ("send", "what"),
    [
        (_create, "creating builds"),
        (_feedback, "sending feedback"),
        (_search, "recording searches"),
    ],
    ids=["create-build", "feedback", "analytics"],
)
async def test_write_categories(client: httpx.AsyncClient, send: Any, what: str) -> None:
    session = new_session()
    statuses = [(await send(client, session)).status_code for _ in range(2)]
    assert statuses == [201, 201]
    refused = await send(client, session)
    assert refused.status_code == 429
    assert refused.json() == rate_limited(what, 2, "session")
    # Categories are independent: reading still works for this session.
    assert (await client.get(f"{API}/builds", headers=headers(session))).status_code == 200


async def test_vote_category(client: httpx.AsyncClient, app: App) -> None:
    owner, voter = new_session(), new_session()
    async with client_at(app, "192.0.2.50") as creator:
        ids = [(await _create(creator, owner)).json()["build_id"] for _ in range(2)]
        ids.append((await _create(creator, new_session())).json()["build_id"])
    for build_id in ids[:2]:
        response = await client.post(
            f"{API}/builds/{build_id}/vote", json={"rating": 4}, headers=headers(voter)
        )
        assert (response.status_code, limit_headers(response)[0]) == (200, 2)
    refused = await client.post(
        f"{API}/builds/{ids[2]}/vote", json={"rating": 4}, headers=headers(voter)
    )
    assert refused.status_code == 429
    assert refused.json() == rate_limited("voting", 2, "session")


async def test_errors_on_limited_routes_carry_the_headers(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/builds", json={"name": ""}, headers=headers(new_session()))
    assert response.status_code == 422
    assert limit_headers(response)[:2] == (2, 1)
    missing = await client.get(f"{API}/builds/b_00000000")
    assert missing.status_code == 404
    assert "X-RateLimit-Limit" in missing.headers


async def test_edits_and_deletes_share_one_limit(client: httpx.AsyncClient, app: App, sql) -> None:
    """Issue 17 item 5: PATCH and DELETE of builds, per session (and 5x per IP)."""
    session = new_session()
    async with client_at(app, "192.0.2.60") as creator:
        ids = [(await _create(creator, session)).json()["build_id"] for _ in range(2)]
    big = "d" * 2000
    patched = await client.patch(
        f"{API}/builds/{ids[0]}", json={"description": big}, headers=headers(session)
    )
    assert (patched.status_code, limit_headers(patched)[:2]) == (200, (2, 1))
    deleted = await client.delete(f"{API}/builds/{ids[0]}", headers=headers(session))
    assert (deleted.status_code, limit_headers(deleted)[:2]) == (200, (2, 0))
    for refused in (
        await client.patch(f"{API}/builds/{ids[1]}", json={"name": "x"}, headers=headers(session)),
        await client.delete(f"{API}/builds/{ids[1]}", headers=headers(session)),
    ):
        assert refused.status_code == 429
        assert refused.json() == rate_limited("editing or deleting builds", 2, "session")
    rows = await sql.fetch("SELECT build_id, name FROM builds")
    assert [tuple(r) for r in rows] == [(ids[1], build_body()["name"])]


async def test_unlimited_routes_have_no_limit_headers(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        for response in (
            await client.get("/health/live"),
            await client.get("/openapi.json"),
            await client.options(f"{API}/builds"),
        ):
            assert response.status_code < 400, response.text
            assert "X-RateLimit-Limit" not in response.headers


@pytest.mark.server
async def test_limits_are_shared_by_every_worker_and_pod(stores: Stores) -> None:
    """Two pods of two workers each, one Valkey: one budget per session, wherever it lands."""
    await clean_stores(stores)
    env = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_READ": "4"}
    pods = [
        ServerProcess(stores.database_url, stores.valkey_url, workers=2, **env).start()
        for _ in range(2)
    ]
    try:
        session = headers(new_session())
        statuses = []
        for i in range(6):
            # A new connection per request: the kernel spreads them over a pod's workers.
            async with httpx.AsyncClient(base_url=pods[i % 2].base_url) as http:
                statuses.append((await http.get(f"{API}/builds", headers=session)).status_code)
        assert statuses == [200, 200, 200, 200, 429, 429]
    finally:
        for pod in pods:
            pod.kill()


async def test_counts_live_in_one_key_per_window(app: App, valkey) -> None:
    """One key per limit after the first hits (the previous window appears when it shifts),
    each expiring after two windows."""
    session = new_session()
    async with client_at(app, "192.0.2.70") as one, client_at(app, "192.0.2.71") as two:
        for _ in range(2):
            await one.get(f"{API}/builds", headers=headers(session))
        await two.get(f"{API}/builds")
    current = f"{KEY_PREFIX}:read:session:3/60:{session}"
    assert sorted(await valkey.keys(f"{KEY_PREFIX}:*")) == sorted(
        [current, f"{KEY_PREFIX}:read:ip:6/60:192.0.2.70", f"{KEY_PREFIX}:read:ip:6/60:192.0.2.71"]
    )
    assert await valkey.get(current) == "2"
    assert 60_000 < await valkey.pttl(current) <= 120_000


async def test_concurrent_checks_are_exact(stores: Stores) -> None:
    """50 checks at once (sent together in one pipeline) against a limit of 20."""
    counter = RateCounter(stores.valkey_url)
    session = new_session()
    try:
        results = await asyncio.gather(
            *[counter.hit("read", [("session", Limit(20), session)]) for _ in range(50)]
        )
    finally:
        await counter.close()
    allowed = [windows[0] for windows in results if windows[0].allowed]
    assert len(allowed) == 20
    assert sorted(w.remaining for w in allowed) == list(range(20))
    refused = [windows[0] for windows in results if not windows[0].allowed]
    assert {(w.remaining, w.counted) for w in refused} == {(0, False)}  # refused: not counted
    assert all(55 <= w.retry_after_s <= 61 for w in refused)


async def test_a_valkey_that_lost_its_scripts_is_reloaded(
    client: httpx.AsyncClient, valkey
) -> None:
    """A restarted Valkey has no scripts: the first check loads it again, no fail open."""
    session = headers(new_session())
    await client.get(f"{API}/builds", headers=session)
    await valkey.script_flush()
    before = sample("myashes_rate_limit_fail_open_total")
    response = await client.get(f"{API}/builds", headers=session)
    assert limit_headers(response)[:2] == (3, 1)
    assert sample("myashes_rate_limit_fail_open_total") == before


@pytest.mark.parametrize(
    "settings_overrides", [{**LIMITS, "rate_limit_enabled": False}], indirect=True
)
async def test_disabled_installs_nothing(client: httpx.AsyncClient, valkey) -> None:
    session = new_session()
    for _ in range(10):
        response = await client.get(f"{API}/builds", headers=headers(session))
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response.headers
    assert await valkey.keys(f"{KEY_PREFIX}:*") == []


def test_ipv6_clients_are_counted_per_64() -> None:
    assert ratelimit.ip_key("2001:db8:1:2:aaaa::1") == ratelimit.ip_key("2001:db8:1:2:ffff::9")
    assert ratelimit.ip_key("2001:db8:1:2::1") != ratelimit.ip_key("2001:db8:1:3::1")
    assert ratelimit.ip_key("203.0.113.9") == "203.0.113.9"
    assert ratelimit.ip_key("not-an-ip") == "not-an-ip"
