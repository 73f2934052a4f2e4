"""Stuffing popular queries: ranked by distinct source networks first (`sources`), and a query
an admin has hidden never appears (PUT/DELETE/GET /admin/insights/hidden-queries)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from aggregators import keys
from service.ctx import App
from tests.auth_keys import Key, bearer, claims, provider_settings
from tests.factories import API, error, headers, new_session, validation

KEY = Key.new("queries-1", "EdDSA")
ADMIN = bearer(KEY.sign(claims("steam:1", "Root", ["admin"])))
PLAYER = bearer(KEY.sign(claims("steam:2", "Pat", ["moderator"])))
HIDDEN = f"{API}/admin/insights/hidden-queries"
SPAM = "Free  GOLD at evil.example"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return provider_settings(auth_public_key=KEY.public_pem())


def client_at(app: App, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def search_from(app: App, ip: str, query: str, session: str | None = None) -> None:
    async with client_at(app, ip) as http:
        response = await http.post(
            f"{API}/analytics/search",
            json={"query": query, "search_mode": "quick", "result_count": 1},
            headers=headers(session or new_session()),
        )
    assert response.status_code == 201, response.text


async def popular(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/analytics/popular-queries", params=params)
    assert response.status_code == 200, response.text
    queries: list[dict[str, Any]] = response.json()["queries"]
    return queries


async def stuffed(app: App) -> None:
    """40 invented sessions from one host vs. 3 sessions from 3 networks."""
    for _ in range(40):
        await search_from(app, "203.0.113.66", SPAM)
    for ip in ("198.51.100.1", "198.51.101.1", "2001:db8:5::1"):
        await search_from(app, ip, "tank build")
    await search_from(app, "203.0.113.67", "healer")  # same /24 as the spammer
    await app.ctx.search.flush()


async def test_popular_queries_rank_by_networks_first(app: App, client, sql) -> None:
    await stuffed(app)
    assert await popular(client) == [
        {"query": "tank build", "count": 3, "sessions": 3, "sources": 3, "search_mode": "quick"},
        {
            "query": "free gold at evil.example",
            "count": 40,
            "sessions": 40,
            "sources": 1,
            "search_mode": "quick",
        },
        {"query": "healer", "count": 1, "sessions": 1, "sources": 1, "search_mode": "quick"},
    ]
    rollups = await sql.fetch(
        "SELECT query_norm, count, sessions, sources FROM search_rollups ORDER BY query_norm"
    )
    assert [tuple(r) for r in rollups] == [
        ("free gold at evil.example", 40, 40, 1),
        ("healer", 1, 1, 1),
        ("tank build", 3, 3, 3),
    ]
    assert await sql.fetchval("SELECT count(*) FROM search_rollup_sources") == 5


async def test_rollup_sources_accumulate_across_flushes(app: App, sql) -> None:
    for ip in ("198.51.100.1", "198.51.100.2"):
        await search_from(app, ip, "mage")
    await app.ctx.search.flush()
    for ip in ("198.51.100.3", "198.51.102.1"):
        await search_from(app, ip, "mage")
    await app.ctx.search.flush()
    row = await sql.fetchrow("SELECT count, sessions, sources FROM search_rollups")
    assert tuple(row) == (4, 4, 2)


async def test_a_hidden_query_never_appears(app: App, client, sql, valkey) -> None:
    await stuffed(app)
    assert [q["query"] for q in await popular(client)][1] == "free gold at evil.example"
    hidden = await client.put(f"{HIDDEN}/{quote(SPAM)}", headers=ADMIN)
    assert hidden.status_code == 200, hidden.text
    body = hidden.json()
    assert (body["query"], body["hidden"], body["hidden_by"]) == (
        "free gold at evil.example",
        True,
        "Root",
    )
    row = await sql.fetchrow("SELECT query_norm, hidden_by FROM hidden_queries")
    assert tuple(row) == ("free gold at evil.example", "Root")
    assert await valkey.smembers(keys.HIDDEN_QUERIES) == {
        keys.HIDDEN_BUILT_MARKER,
        "free gold at evil.example",
    }
    # The copy in Valkey was built before the hide: reads leave the query out at once ...
    assert [q["query"] for q in await popular(client)] == ["tank build", "healer"]
    # ... and so does every rebuild, in every period and mode.
    for days, mode in ((7, None), (1, "quick"), (90, None)):
        await valkey.delete(keys.popular_queries(days, mode))
        params: dict[str, Any] = {"days": days, **({"search_mode": mode} if mode else {})}
        assert [q["query"] for q in await popular(client, **params)] == ["tank build", "healer"]
    # Hidden even when the hidden set has expired from Valkey (rebuilt from Postgres).
    await valkey.delete(keys.HIDDEN_QUERIES)
    assert [q["query"] for q in await popular(client)] == ["tank build", "healer"]
    # Hiding again keeps the first hide; unhiding brings it back with the next copy.
    again = await client.put(f"{HIDDEN}/free%20gold%20at%20evil.example", headers=ADMIN)
    assert again.json() == body
    shown = await client.delete(f"{HIDDEN}/{quote(SPAM)}", headers=ADMIN)
    assert shown.status_code == 200
    assert shown.json() == {
        "query": "free gold at evil.example",
        "hidden": False,
        "hidden_by": None,
        "hidden_at": None,
    }
    assert await sql.fetchval("SELECT count(*) FROM hidden_queries") == 0
    await valkey.delete(keys.popular_queries(7, None))
    assert len(await popular(client)) == 3


async def test_hidden_queries_list_pages_with_a_cursor(client) -> None:
    for query in ("beta", "alpha", "a/b c", "gamma"):
        response = await client.put(f"{HIDDEN}/{quote(query, safe='')}", headers=ADMIN)
        assert response.status_code == 200, response.text
    seen, cursor = [], None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get(HIDDEN, params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [(i["query"], i["hidden"], i["hidden_by"]) for i in page["items"]]
        assert all(i["hidden_at"].endswith("+00:00") for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(q, True, "Root") for q in ("a/b c", "alpha", "beta", "gamma")]
    bad = await client.get(HIDDEN, params={"cursor": "_w"}, headers=ADMIN)  # b"\xff"
    assert bad.status_code == 422
    assert bad.json() == validation("cursor", "not a cursor this API gave out")
    garbage = await client.get(HIDDEN, params={"cursor": "%%%"}, headers=ADMIN)
    assert garbage.status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", f"{HIDDEN}/spam"), ("DELETE", f"{HIDDEN}/spam"), ("GET", HIDDEN)],
)
async def test_hidden_queries_need_the_admin_role(client, sql, method: str, path: str) -> None:
    anonymous = await client.request(method, path)
    assert (anonymous.status_code, anonymous.json()) == (
        401,
        error(
            "authentication_required",
            "This needs a bearer token (Authorization: Bearer <JWT>)",
            401,
        ),
    )
    player = await client.request(method, path, headers=PLAYER)
    assert (player.status_code, player.json()) == (
        403,
        error("forbidden", "This needs the admin role", 403),
    )
    spoofed = await client.request(method, path, headers={"X-Roles": "admin"})
    assert spoofed.status_code == 401
    assert await sql.fetchval("SELECT count(*) FROM hidden_queries") == 0


@pytest.mark.parametrize("query", ["%20%20%20", "%E2%80%8B%E2%80%8B"])
async def test_a_blank_or_invisible_query_cannot_be_hidden(client, query: str) -> None:
    response = await client.put(f"{HIDDEN}/{query}", headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "query"


async def test_a_query_hidden_before_anyone_searched_it(app: App, client, valkey) -> None:
    assert (await client.put(f"{HIDDEN}/SPAM", headers=ADMIN)).status_code == 200
    assert 0 < await valkey.ttl(keys.HIDDEN_QUERIES) <= keys.VIEW_KEEP_S
    for ip in ("198.51.100.1", "198.51.101.1"):
        await search_from(app, ip, "spam")
    await search_from(app, "198.51.102.1", "ham")
    await app.ctx.search.flush()
    assert [q["query"] for q in await popular(client)] == ["ham"]
