"""Stuffing from one network: at most 10 votes per build per source network (IPv4 /24, IPv6
/48) per 24 h, popular builds count each network once, and a build made private or deleted
leaves /builds/popular at once on every worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from service.builds import popular as popular_module
from service.ctx import App
from tests.conftest import Stores, clean_stores
from tests.factories import API, build_body, error, headers, new_session
from tests.server import ServerProcess

WINDOW_S = 24 * 3600


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {
        "rate_limit_enabled": True,
        "rate_limit_build_create": 100,
        **getattr(request, "param", {}),
    }


def client_at(app: App, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def new_build(app: App, owner: str, **fields: Any) -> str:
    async with client_at(app, "192.0.2.1") as http:
        response = await http.post(
            f"{API}/builds", json=build_body(**fields), headers=headers(owner)
        )
    assert response.status_code == 201, response.text
    build_id: str = response.json()["build_id"]
    return build_id


async def vote_from(app: App, ip: str, build_id: str, rating: int = 5) -> httpx.Response:
    async with client_at(app, ip) as http:
        return await http.post(
            f"{API}/builds/{build_id}/vote", json={"rating": rating}, headers=headers(new_session())
        )


def limited(build_id: str) -> dict[str, Any]:
    message = f"Rate limit exceeded for voting on build {build_id}: 10 votes per 24 h per network"
    return error("rate_limited", message, 429)


async def test_ten_votes_per_build_per_network_per_day(app: App, sql) -> None:
    build_id = await new_build(app, new_session())
    other = await new_build(app, new_session())
    # Ten hosts of one /24, each with a fresh session: ten votes, then 429.
    for host in range(1, 11):
        response = await vote_from(app, f"203.0.113.{host}", build_id)
        assert response.status_code == 200, response.text
        assert response.json()["vote_count"] == host
    for host in (11, 200):
        refused = await vote_from(app, f"203.0.113.{host}", build_id)
        assert refused.status_code == 429
        assert refused.json() == limited(build_id)
        assert WINDOW_S - 60 < int(refused.headers["Retry-After"]) <= WINDOW_S
        assert refused.headers["X-RateLimit-Limit"] == "10"
        assert refused.headers["X-RateLimit-Remaining"] == "0"
    # Another network, and the same network on another build, are not affected.
    assert (await vote_from(app, "203.0.114.1", build_id)).status_code == 200
    assert (await vote_from(app, "203.0.113.77", other)).status_code == 200
    rows = await sql.fetch(
        "SELECT source_network, count(*) FROM build_votes WHERE build_id = $1 GROUP BY 1 "
        "ORDER BY 1",
        build_id,
    )
    assert [tuple(r) for r in rows] == [("203.0.113.0/24", 10), ("203.0.114.0/24", 1)]
    assert await sql.fetchval("SELECT vote_count FROM builds WHERE build_id = $1", build_id) == 11
    # A day later the network's votes have aged out of the window.
    await sql.execute(
        "UPDATE build_votes SET created_at = created_at - interval '24 hours 1 second'"
    )
    assert (await vote_from(app, "203.0.113.12", build_id)).status_code == 200


async def test_ipv6_networks_are_slash_48(app: App, sql) -> None:
    build_id = await new_build(app, new_session())
    for subnet in range(10):
        response = await vote_from(app, f"2001:db8:7:{subnet:x}::1", build_id)
        assert response.status_code == 200
    assert (await vote_from(app, "2001:db8:7:ffff::9", build_id)).status_code == 429
    assert (await vote_from(app, "2001:db8:8::1", build_id)).status_code == 200
    networks = await sql.fetch("SELECT DISTINCT source_network FROM build_votes ORDER BY 1")
    assert [r[0] for r in networks] == ["2001:db8:7::/48", "2001:db8:8::/48"]


@pytest.mark.parametrize(
    ("settings_overrides", "networks"),
    [
        # Without trusted proxies the header is the client's own claim: the socket counts.
        ({"rate_limit_enabled": True}, ["192.0.2.0/24"]),
        (
            {"rate_limit_enabled": True, "trusted_proxies": ("192.0.2.0/24",)},
            ["198.51.100.0/24", "203.0.113.0/24"],
        ),
    ],
    indirect=["settings_overrides"],
)
async def test_forwarded_networks_only_through_trusted_proxies(
    app: App, sql, networks: list[str]
) -> None:
    build_id = await new_build(app, new_session())
    async with client_at(app, "192.0.2.9") as proxy:
        for client in ("198.51.100.4", "203.0.113.4"):
            response = await proxy.post(
                f"{API}/builds/{build_id}/vote",
                json={"rating": 4},
                headers={**headers(new_session()), "X-Forwarded-For": client},
            )
            assert response.status_code == 200
    rows = await sql.fetch("SELECT DISTINCT source_network FROM build_votes ORDER BY 1")
    assert [r[0] for r in rows] == networks


async def popular_names(app: App, **params: Any) -> list[str]:
    async with client_at(app, "192.0.2.50") as http:
        response = await http.get(f"{API}/builds/popular", params=params)
    assert response.status_code == 200, response.text
    return [b["name"] for b in response.json()["builds"]]


@pytest.mark.parametrize("period", ["day", "week", "month", "all"])
async def test_one_network_cannot_move_popular_builds(app: App, period: str) -> None:
    """Ten 5s from one /24 weigh like one 5: three networks voting 4 rank above them."""
    stuffed = await new_build(app, new_session(), name="stuffed")
    liked = await new_build(app, new_session(), name="liked")
    for host in range(1, 11):
        assert (await vote_from(app, f"203.0.113.{host}", stuffed, 5)).status_code == 200
    for network in ("198.51.100.1", "198.51.101.1", "2001:db8:9::1"):
        assert (await vote_from(app, network, liked, 4)).status_code == 200
    assert await popular_names(app, period=period) == ["liked", "stuffed"]


async def test_network_score_ties_go_to_more_networks_then_votes(app: App) -> None:
    """Score 5 each: two networks (3 and 2) beat one network of 5s, which beats one 5."""
    one_vote = await new_build(app, new_session(), name="one vote")
    many_votes = await new_build(app, new_session(), name="one network, 4 votes")
    two_networks = await new_build(app, new_session(), name="two networks")
    assert (await vote_from(app, "198.51.100.1", one_vote, 5)).status_code == 200
    for host in range(1, 5):
        assert (await vote_from(app, f"203.0.113.{host}", many_votes, 5)).status_code == 200
    assert (await vote_from(app, "198.51.100.2", two_networks, 3)).status_code == 200
    assert (await vote_from(app, "203.0.113.9", two_networks, 2)).status_code == 200
    assert await popular_names(app, period="week") == [
        "two networks",
        "one network, 4 votes",
        "one vote",
    ]


# ---- a build made private or deleted leaves /builds/popular at once, on every worker -------


@pytest.mark.parametrize("period", ["day", "all"])
@pytest.mark.parametrize("change", ["private", "deleted"])
async def test_hidden_or_deleted_build_leaves_popular_at_once(
    app: App, valkey, period: str, change: str
) -> None:
    owner = new_session()
    gone = await new_build(app, owner, name="soon gone", description="secret plans")
    stays = await new_build(app, new_session(), name="stays")
    assert (await vote_from(app, "198.51.100.1", gone, 5)).status_code == 200
    assert (await vote_from(app, "198.51.101.1", gone, 5)).status_code == 200
    assert (await vote_from(app, "198.51.102.1", stays, 3)).status_code == 200
    assert await popular_names(app, period=period) == ["soon gone", "stays"]
    key = f"myashes:v1:popular-builds:{period}:players"
    cached = await valkey.get(key)
    async with client_at(app, "192.0.2.1") as http:
        if change == "private":
            response = await http.patch(
                f"{API}/builds/{gone}", json={"is_public": False}, headers=headers(owner)
            )
        else:
            response = await http.delete(f"{API}/builds/{gone}", headers=headers(owner))
    assert response.status_code == 200
    async with client_at(app, "192.0.2.50") as http:
        body = (await http.get(f"{API}/builds/popular", params={"period": period})).json()
    assert [b["name"] for b in body["builds"]] == ["stays"]
    assert "secret plans" not in str(body)
    # The shared copy still ranks it (fresh for 60 s): the read leaves it out.
    assert await valkey.get(key) == cached


@pytest.mark.server
def test_hidden_build_leaves_popular_on_every_worker_of_a_real_server(stores: Stores) -> None:
    """Two workers (each with its own view state) behind one port: after the PATCH, no
    request on any connection shows the build."""
    asyncio.run(clean_stores(stores))
    server = ServerProcess(stores.database_url, stores.valkey_url, workers=2).start()
    try:
        server.wait_workers_ready(2)
        base, owner = f"{server.base_url}{API}", new_session()
        ids = []
        for name in ("soon gone", "stays"):
            created = httpx.post(
                f"{base}/builds", json=build_body(name=name), headers=headers(owner)
            )
            assert created.status_code == 201
            ids.append(created.json()["build_id"])
        for build_id, ratings in zip(ids, ([5, 5], [3]), strict=True):
            for rating in ratings:
                voted = httpx.post(
                    f"{base}/builds/{build_id}/vote",
                    json={"rating": rating},
                    headers=headers(new_session()),
                )
                assert voted.status_code == 200
        for _ in range(10):  # every worker sees (and caches) the ranking
            names = [b["name"] for b in httpx.get(f"{base}/builds/popular").json()["builds"]]
            assert names == ["soon gone", "stays"]
        hidden = httpx.patch(
            f"{base}/builds/{ids[0]}", json={"is_public": False}, headers=headers(owner)
        )
        assert hidden.status_code == 200
        for _ in range(20):  # a new connection each: both workers answer some
            names = [b["name"] for b in httpx.get(f"{base}/builds/popular").json()["builds"]]
            assert names == ["stays"]
    finally:
        server.kill()


async def test_popular_shows_current_names(app: App) -> None:
    owner = new_session()
    build_id = await new_build(app, owner, name="before")
    assert (await vote_from(app, "198.51.100.1", build_id, 5)).status_code == 200
    assert await popular_names(app, period="week") == ["before"]
    async with client_at(app, "192.0.2.1") as http:
        response = await http.patch(
            f"{API}/builds/{build_id}", json={"name": "after"}, headers=headers(owner)
        )
    assert response.status_code == 200
    assert await popular_names(app, period="week") == ["after"]


async def test_an_old_vote_without_a_network_counts_as_its_own(app: App, sql) -> None:
    """Votes cast before networks were recorded: one network each (their session)."""
    legacy = await new_build(app, new_session(), name="legacy")
    fresh = await new_build(app, new_session(), name="fresh")
    now = datetime.now(UTC)
    await sql.executemany(
        "INSERT INTO build_votes (build_id, session_id, rating, created_at) VALUES ($1, $2, 4, $3)",
        [(legacy, new_session(), now - timedelta(hours=1)) for _ in range(3)],
    )
    for host in range(1, 4):
        assert (await vote_from(app, f"203.0.113.{host}", fresh, 5)).status_code == 200
    assert await popular_names(app, period="day") == ["legacy", "fresh"]


async def test_ranking_looks_past_hidden_candidates(app: App, sql, monkeypatch) -> None:
    """Only the best candidates are joined to builds; when hidden builds leave too few, the
    ranking retries with more (exact whatever the share of private builds)."""
    monkeypatch.setattr(popular_module, "FIRST_CANDIDATES", 2)
    owner = new_session()
    hidden = [await new_build(app, owner, name=f"hidden {i}") for i in range(3)]
    shown = await new_build(app, new_session(), name="shown")
    for i, build_id in enumerate([*hidden, shown]):
        for host in range(1, 5 - i if build_id != shown else 2):
            assert (await vote_from(app, f"198.51.{100 + host}.1", build_id)).status_code == 200
    await sql.execute("UPDATE builds SET is_public = false WHERE build_id = ANY($1)", hidden)
    assert await popular_names(app, period="all") == ["shown"]
    assert await popular_module.rank("all", False, limit=1) == [shown]
