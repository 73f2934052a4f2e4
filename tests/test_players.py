"""Player-owned builds through HTTP (AUTH_PUBLIC_KEY): ownership from every device, another
player's builds, claim, one vote per player, identity headers ignored, writes that need a token."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest

from tests.auth_keys import PLAYER, Key, bearer, claims, provider_settings
from tests.factories import API, build_body, error, headers, new_session, not_found

KEY = Key.new("players-1", "ES256")
OTHER = "steam:76561198000000002"
ALICE = KEY.sign(claims(PLAYER, "Alice"))
BOB = KEY.sign(claims(OTHER, "Bob"))
# What earlier versions trusted: none of these may identify anyone.
IDENTITY_HEADERS = {
    "X-Steam-ID": PLAYER,
    "X-Player-ID": PLAYER,
    "X-Steam-Display-Name": "Alice",
    "X-User-ID": PLAYER,
    "X-Admin": "true",
    "X-Roles": "admin",
}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    extra = dict(getattr(request, "param", {}))
    return provider_settings(auth_public_key=KEY.public_pem(), **extra)


def as_(session: str, token: str | None = None, **extra: str) -> dict[str, str]:
    sent = headers(session)
    if token is not None:
        sent.update(bearer(token))
    return {**sent, **extra}


async def create(
    client: httpx.AsyncClient, session: str, token: str | None = None, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/builds", json=build_body(**fields), headers=as_(session, token)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_build_created_with_a_token_belongs_to_the_player(
    client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    session = new_session()
    build = await create(client, session, ALICE, name="Holy Wall")
    assert build["creator"] == {"display_name": "Alice", "is_authenticated": True}
    assert build["created_by"] == "Alice"
    row = await sql.fetchrow(
        "SELECT owner_session, owner_player, creator_name FROM builds WHERE build_id = $1",
        build["build_id"],
    )
    assert tuple(row) == (session, PLAYER, "Alice")
    shown = [
        await client.get(f"{API}/builds/{build['build_id']}"),
        await client.get(f"{API}/builds"),
        await client.get(f"{API}/builds", params={"search": "Holy"}),
    ]
    for response in shown:
        assert response.status_code == 200
        assert PLAYER not in response.text  # the player id is never shown
    item = shown[1].json()["builds"][0]
    assert item["creator"] == {"display_name": "Alice", "is_authenticated": True}
    assert item["created_by"] == "Alice"


async def test_the_player_owns_it_from_every_device(client: httpx.AsyncClient) -> None:
    laptop, phone, tablet = new_session(), new_session(), new_session()
    build = await create(client, laptop, ALICE, is_public=False)
    url = f"{API}/builds/{build['build_id']}"
    seen = await client.get(url, headers=as_(phone, ALICE))
    assert (seen.status_code, seen.json()["name"]) == (200, "Tank build")
    patched = await client.patch(url, json={"name": "Renamed"}, headers=as_(phone, ALICE))
    assert (patched.status_code, patched.json()["name"]) == (200, "Renamed")
    # Without the token, even the creating session no longer owns a player's build.
    assert (await client.get(url, headers=as_(laptop))).json() == not_found(build["build_id"])
    deleted = await client.delete(url, headers=as_(tablet, ALICE))
    assert deleted.status_code == 200
    assert (await client.get(url, headers=as_(laptop, ALICE))).status_code == 404


async def test_another_player_gets_404_for_private_and_403_for_public(
    client: httpx.AsyncClient,
) -> None:
    session = new_session()
    private = await create(client, session, ALICE, is_public=False)
    public = await create(client, session, ALICE)
    private_url = f"{API}/builds/{private['build_id']}"
    for response in (
        await client.get(private_url, headers=as_(session, BOB)),
        await client.patch(private_url, json={"name": "x"}, headers=as_(session, BOB)),
        await client.delete(private_url, headers=as_(session, BOB)),
    ):
        assert response.json() == not_found(private["build_id"])
    public_url = f"{API}/builds/{public['build_id']}"
    message = f"Build {public['build_id']} belongs to another player"
    for response in (
        await client.patch(public_url, json={"name": "x"}, headers=as_(session, BOB)),
        await client.delete(public_url, headers=as_(session)),
    ):
        assert response.status_code == 403
        assert response.json() == error("not_owner", message, 403)
    assert (await client.get(public_url, headers=as_(session, BOB))).status_code == 200


async def test_anonymous_builds_stay_the_sessions(client: httpx.AsyncClient) -> None:
    session = new_session()
    build = await create(client, session, is_public=False)
    assert build["creator"] == {"display_name": "anonymous", "is_authenticated": False}
    url = f"{API}/builds/{build['build_id']}"
    # The session owns it with or without a token; a token on another session does not.
    assert (await client.get(url, headers=as_(session, ALICE))).status_code == 200
    assert (await client.get(url, headers=as_(new_session(), ALICE))).status_code == 404
    patched = await client.patch(url, json={"is_public": True}, headers=as_(session, BOB))
    assert patched.status_code == 200
    refused = await client.patch(url, json={"name": "x"}, headers=as_(new_session(), ALICE))
    assert refused.json() == error(
        "not_owner", f"Build {build['build_id']} belongs to another session", 403
    )


async def test_claim_moves_exactly_the_sessions_anonymous_builds(
    client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    mine, theirs = new_session(), new_session()
    moved = [
        (await create(client, mine, name="One"))["build_id"],
        (await create(client, mine, name="Two", is_public=False))["build_id"],
    ]
    bobs = (await create(client, mine, BOB, name="Bob's"))["build_id"]
    others = (await create(client, theirs, name="Theirs"))["build_id"]
    response = await client.post(f"{API}/builds/auth/claim", headers=as_(mine, ALICE))
    assert (response.status_code, response.json()) == (200, {"claimed": 2})
    rows = await sql.fetch("SELECT build_id, owner_player, creator_name FROM builds")
    owners = {r["build_id"]: (r["owner_player"], r["creator_name"]) for r in rows}
    assert owners == {
        moved[0]: (PLAYER, "Alice"),
        moved[1]: (PLAYER, "Alice"),
        bobs: (OTHER, "Bob"),
        others: (None, None),
    }
    again = await client.post(f"{API}/builds/auth/claim", headers=as_(mine, ALICE))
    assert (again.status_code, again.json()) == (200, {"claimed": 0})
    # Now the player's, from any device; the claiming session alone no longer owns them.
    url = f"{API}/builds/{moved[1]}"
    phone = await client.get(url, headers=as_(new_session(), ALICE))
    assert phone.json()["creator"] == {"display_name": "Alice", "is_authenticated": True}
    assert (await client.get(url, headers=as_(mine))).status_code == 404
    # Another player claiming the same session later gets nothing of Alice's.
    late = await client.post(f"{API}/builds/auth/claim", headers=as_(mine, BOB))
    assert late.json() == {"claimed": 0}


async def test_claim_without_a_token_is_401_authentication_required(
    client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    session = new_session()
    await create(client, session)
    response = await client.post(
        f"{API}/builds/auth/claim", headers=as_(session, **IDENTITY_HEADERS)
    )
    assert response.status_code == 401
    assert response.json() == error(
        "authentication_required", "This needs a bearer token (Authorization: Bearer <JWT>)", 401
    )
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await sql.fetchval("SELECT count(*) FROM builds WHERE owner_player IS NOT NULL") == 0


async def test_identity_headers_have_no_effect(
    client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    alices = await create(client, new_session(), ALICE, is_public=False)
    session = new_session()
    status = await client.get(f"{API}/builds/auth/status", headers=as_(session, **IDENTITY_HEADERS))
    assert status.json() == {"authenticated": False, "player": None, "roles": []}
    created = await client.post(
        f"{API}/builds", json=build_body(), headers=as_(session, **IDENTITY_HEADERS)
    )
    assert created.json()["creator"] == {"display_name": "anonymous", "is_authenticated": False}
    owner = await sql.fetchval(
        "SELECT owner_player FROM builds WHERE build_id = $1", created.json()["build_id"]
    )
    assert owner is None
    url = f"{API}/builds/{alices['build_id']}"
    assert (await client.get(url, headers=as_(session, **IDENTITY_HEADERS))).status_code == 404
    patched = await client.patch(url, json={"name": "x"}, headers=as_(session, **IDENTITY_HEADERS))
    assert patched.status_code == 404
    # Alice's vote binds her player id; a header naming her does not make a vote hers.
    public = await create(client, new_session(), BOB)
    vote_url = f"{API}/builds/{public['build_id']}/vote"
    assert (
        await client.post(vote_url, json={"rating": 5}, headers=as_(session, ALICE))
    ).status_code == 200
    spoof = await client.post(
        vote_url, json={"rating": 1}, headers=as_(new_session(), **IDENTITY_HEADERS)
    )
    assert (spoof.status_code, spoof.json()["vote_count"]) == (200, 2)
    players = await sql.fetch("SELECT player_id FROM build_votes ORDER BY id")
    assert [r["player_id"] for r in players] == [PLAYER, None]


async def test_one_vote_per_player_across_sessions(
    client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    build = await create(client, new_session())
    url = f"{API}/builds/{build['build_id']}/vote"
    laptop, phone = new_session(), new_session()
    first = await client.post(url, json={"rating": 4}, headers=as_(laptop, ALICE))
    assert first.json() == {
        "build_id": build["build_id"],
        "your_rating": 4,
        "avg_rating": 4.0,
        "vote_count": 1,
    }
    second = await client.post(url, json={"rating": 1}, headers=as_(phone, ALICE))
    assert second.status_code == 409
    assert second.json() == error(
        "already_voted",
        f"This player or session has already voted on build {build['build_id']}",
        409,
    )
    # The same browser without the token is still the same session: 409 too.
    again = await client.post(url, json={"rating": 1}, headers=as_(laptop))
    assert again.json()["error"] == "already_voted"
    bob = await client.post(url, json={"rating": 2}, headers=as_(phone, BOB))
    assert (bob.status_code, bob.json()["vote_count"], bob.json()["avg_rating"]) == (200, 2, 3.0)
    rows = await sql.fetch("SELECT session_id, player_id, rating FROM build_votes ORDER BY id")
    assert [tuple(r) for r in rows] == [(laptop, PLAYER, 4), (phone, OTHER, 2)]


async def test_concurrent_votes_of_one_player_count_once(
    client: httpx.AsyncClient, sql: asyncpg.Connection
) -> None:
    """Ten sessions of one player vote at once (one group commit): exactly one counts."""
    build = await create(client, new_session())
    url = f"{API}/builds/{build['build_id']}/vote"
    responses = await asyncio.gather(
        *(
            client.post(url, json={"rating": 5}, headers=as_(new_session(), ALICE))
            for _ in range(10)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 9
    row = await sql.fetchrow(
        "SELECT vote_count, rating_sum FROM builds WHERE build_id = $1", build["build_id"]
    )
    assert tuple(row) == (1, 5)
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 1


async def test_private_player_builds_take_votes_from_their_player_only(
    client: httpx.AsyncClient,
) -> None:
    build = await create(client, new_session(), ALICE, is_public=False)
    url = f"{API}/builds/{build['build_id']}/vote"
    mine = await client.post(url, json={"rating": 5}, headers=as_(new_session(), ALICE))
    assert mine.status_code == 200
    for token in (BOB, None):
        response = await client.post(url, json={"rating": 5}, headers=as_(new_session(), token))
        assert response.json() == not_found(build["build_id"])


@pytest.mark.parametrize("settings_overrides", [{"auth_required_for_writes": True}], indirect=True)
async def test_auth_required_for_writes(client: httpx.AsyncClient) -> None:
    session = new_session()
    refused = await client.post(
        f"{API}/builds", json=build_body(), headers=as_(session, **IDENTITY_HEADERS)
    )
    assert refused.status_code == 401
    assert refused.json() == error(
        "authentication_required", "This needs a bearer token (Authorization: Bearer <JWT>)", 401
    )
    bad = await client.post(f"{API}/builds", json=build_body(), headers=as_(session, "not-a-jwt"))
    assert bad.json()["error"] == "authentication_failed"
    created = await client.post(f"{API}/builds", json=build_body(), headers=as_(session, ALICE))
    assert created.status_code == 201
    # Reading needs nothing.
    assert (await client.get(f"{API}/builds", headers=as_(session))).status_code == 200


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_enabled": True, "rate_limit_analytics": 2, "rate_limit_ip_multiplier": 10}],
    indirect=True,
)
async def test_rate_limits_count_a_player_across_sessions(client: httpx.AsyncClient) -> None:
    search = {"query": "tank build", "search_mode": "quick", "result_count": 3}
    url = f"{API}/analytics/search"
    for _ in range(2):  # a fresh session each time: only the player's window fills up
        response = await client.post(url, json=search, headers=as_(new_session(), ALICE))
        assert response.status_code == 201
    refused = await client.post(url, json=search, headers=as_(new_session(), ALICE))
    assert refused.status_code == 429
    assert refused.json() == error(
        "rate_limited", "Rate limit exceeded for recording searches: 2 per minute per player", 429
    )
    assert refused.headers["X-RateLimit-Limit"] == "2"
    bob = await client.post(url, json=search, headers=as_(new_session(), BOB))
    assert bob.status_code == 201
    anonymous = await client.post(url, json=search, headers=as_(new_session()))
    assert anonymous.status_code == 201
