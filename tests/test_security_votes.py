"""Vote stuffing: a vote needs a client-sent session, sessions minted per vote hit the per-IP
limit, and another session's private build cannot be voted on (404, existence hidden)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.ctx import App
from tests.factories import API, build_body, error, headers, new_session, not_found


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "rate_limit_enabled": True,
        "rate_limit_vote": 2,
        "rate_limit_ip_multiplier": 3,
        "rate_limit_build_create": 100,
    }


def client_at(app: App, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def new_build(app: App, owner: str, **fields: Any) -> str:
    async with client_at(app, "192.0.2.1") as http:  # builds come from elsewhere
        response = await http.post(
            f"{API}/builds", json=build_body(**fields), headers=headers(owner)
        )
    assert response.status_code == 201, response.text
    build_id: str = response.json()["build_id"]
    return build_id


async def vote(
    http: httpx.AsyncClient, build_id: str, session: str | None, rating: Any = 5
) -> httpx.Response:
    sent = {"X-Session-ID": session} if session is not None else {}
    return await http.post(f"{API}/builds/{build_id}/vote", json={"rating": rating}, headers=sent)


SESSION_REQUIRED = error(
    "session_required", "Voting needs the X-Session-ID header (sess_ + 24 hex)", 400
)


@pytest.mark.parametrize(
    "sent",
    [None, "", "sess_", "sess_" + "A" * 24, "sess_" + "0" * 23, "sess_" + "0" * 25, "bogus"],
    ids=["missing", "empty", "prefix-only", "uppercase", "short", "long", "bogus"],
)
async def test_vote_without_a_sent_session_is_refused(
    app: App, client: httpx.AsyncClient, sql, sent: str | None
) -> None:
    build_id = await new_build(app, new_session())
    response = await vote(client, build_id, sent)
    assert response.status_code == 400
    assert response.json() == SESSION_REQUIRED
    assert response.headers["X-Session-ID"] != sent  # a fresh one was issued instead
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0
    assert await sql.fetchval("SELECT vote_count FROM builds") == 0


async def test_minting_sessions_is_capped_by_the_ip_limit(app: App, sql) -> None:
    """One client inventing a new session per vote: 2 per session, but 6 per IP."""
    build_ids = [await new_build(app, new_session()) for _ in range(4)]
    async with client_at(app, "198.51.100.66") as stuffer:
        statuses = [
            (await vote(stuffer, build_ids[i % 4], new_session())).status_code for i in range(9)
        ]
    assert statuses == [200] * 6 + [429] * 3
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 6
    async with client_at(app, "198.51.100.67") as neighbour:
        assert (await vote(neighbour, build_ids[0], new_session())).status_code == 200


async def test_refused_votes_count_against_the_ip(app: App, sql) -> None:
    """Votes without a session still count for the IP: probing is not free."""
    build_id = await new_build(app, new_session())
    async with client_at(app, "198.51.100.68") as http:
        assert [(await vote(http, build_id, None)).status_code for _ in range(6)] == [400] * 6
        assert (await vote(http, build_id, new_session())).status_code == 429
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0


async def test_private_build_of_another_session_is_hidden(
    app: App, client: httpx.AsyncClient, sql
) -> None:
    owner = new_session()
    build_id = await new_build(app, owner, is_public=False)
    response = await vote(client, build_id, new_session())
    assert response.status_code == 404
    assert response.json() == not_found(build_id)
    # Same answer as for an id that does not exist: existence is not revealed.
    unknown = await vote(client, "b_00000000", new_session())
    assert unknown.json() == not_found("b_00000000")
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0
    mine = await vote(client, build_id, owner, rating=3)
    assert (mine.status_code, mine.json()["vote_count"]) == (200, 1)


async def test_one_vote_per_session_per_build(app: App, client: httpx.AsyncClient, sql) -> None:
    build_id = await new_build(app, new_session())
    voter = new_session()
    assert (await vote(client, build_id, voter, rating=5)).status_code == 200
    again = await vote(client, build_id, voter, rating=1)
    assert again.status_code == 409
    assert again.json()["error"] == "already_voted"
    assert await sql.fetchval("SELECT rating_sum FROM builds") == 5
