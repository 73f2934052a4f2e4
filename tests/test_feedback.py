"""POST /feedback: shape, the 500-character snippet cut, enums, lengths, the stored session."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from service.contract import ids
from tests.factories import API, SESSION_RE, TIMESTAMP_RE, headers, new_session, validation

FEEDBACK_ID_RE = re.compile(r"^f_[0-9a-f]{8}$")


def feedback(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": "best tank build",
        "response_snippet": "Try a Paladin.",
        "search_mode": "smart",
        "rating": "up",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


async def post(client: httpx.AsyncClient, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return await client.post(f"{API}/feedback", json=body, **kw)


async def test_created_shape_and_row(client: httpx.AsyncClient, sql) -> None:
    session = new_session()
    response = await post(client, feedback(comment="helpful"), headers=headers(session))
    assert response.status_code == 201
    assert response.headers["X-Session-ID"] == session
    body = response.json()
    assert set(body) == {"feedback_id", "received_at"}
    assert FEEDBACK_ID_RE.match(body["feedback_id"])
    assert TIMESTAMP_RE.match(body["received_at"])
    row = await sql.fetchrow("SELECT * FROM feedback")
    assert dict(row) == {
        "feedback_id": body["feedback_id"],
        "query": "best tank build",
        "response_snippet": "Try a Paladin.",
        "search_mode": "smart",
        "rating": "up",
        "comment": "helpful",
        "session_id": session,
        "received_at": row["received_at"],
        "query_norm": "best tank build",
        "status": "new",
        "note": None,
        "reviewed_by": None,
        "reviewed_by_player": None,
        "reviewed_at": None,
    }
    received = datetime.fromisoformat(body["received_at"])
    assert abs(row["received_at"] - received) < timedelta(milliseconds=1)


async def test_rollups_in_the_same_transaction(client: httpx.AsyncClient, sql) -> None:
    """Each insert counts once per (day, mode, normalised query, rating) and per (day, mode,
    rating); distinct sessions per key; a session repeating itself is one session."""
    alice, bob = new_session(), new_session()
    sent = [
        (alice, feedback(query="Best  TANK build", rating="down")),
        (alice, feedback(query="best tank build", rating="down")),
        (bob, feedback(query="best tank build ", rating="down")),
        (bob, feedback(query="best tank build", rating="up")),
        (bob, feedback(query="healer", rating="up", search_mode="deep")),
    ]
    received = []
    for session, body in sent:
        response = await post(client, body, headers=headers(session))
        assert response.status_code == 201
        received.append(datetime.fromisoformat(response.json()["received_at"]))
    day = received[0].date()
    rollups = await sql.fetch(
        "SELECT day, query_norm, search_mode, rating, count, sessions,"
        " date_trunc('milliseconds', last_at)"
        " FROM feedback_rollups ORDER BY query_norm, rating"
    )
    assert [tuple(r) for r in rollups] == [
        (day, "best tank build", "smart", "down", 3, 2, received[2]),
        (day, "best tank build", "smart", "up", 1, 1, received[3]),
        (day, "healer", "deep", "up", 1, 1, received[4]),
    ]
    daily = await sql.fetch(
        "SELECT day, search_mode, rating, count FROM feedback_daily ORDER BY search_mode, rating"
    )
    assert [tuple(r) for r in daily] == [
        (day, "deep", "up", 1),
        (day, "smart", "down", 3),
        (day, "smart", "up", 1),
    ]
    assert await sql.fetchval("SELECT count(*) FROM feedback_rollup_sessions") == 4
    totals = await sql.fetch(
        "SELECT query_norm, down, up, date_trunc('milliseconds', last_at)"
        " FROM feedback_queries ORDER BY query_norm"
    )
    assert [tuple(r) for r in totals] == [
        ("best tank build", 3, 1, received[3]),
        ("healer", 0, 1, received[4]),
    ]


async def test_generated_session_is_stored(client: httpx.AsyncClient, sql) -> None:
    response = await post(client, feedback(), headers={"X-Session-ID": "not-a-session"})
    assert response.status_code == 201
    issued = response.headers["X-Session-ID"]
    assert SESSION_RE.match(issued)
    assert await sql.fetchval("SELECT session_id FROM feedback") == issued


@pytest.mark.parametrize(
    ("snippet", "stored"),
    [
        ("s" * 501, "s" * 500),
        ("s" * 5000, "s" * 500),
        ("s" * 500, "s" * 500),
        ("é" * 499 + "🙂" * 3, "é" * 499 + "🙂"),
        ("x", "x"),
    ],
    ids=["501", "5000", "500", "multibyte", "1"],
)
async def test_long_snippet_is_cut_to_500(
    client: httpx.AsyncClient, sql, snippet: str, stored: str
) -> None:
    response = await post(client, feedback(response_snippet=snippet))
    assert response.status_code == 201
    assert await sql.fetchval("SELECT response_snippet FROM feedback") == stored


@pytest.mark.parametrize("field", ["query", "response_snippet", "search_mode", "rating"])
async def test_required_fields(client: httpx.AsyncClient, sql, field: str) -> None:
    response = await post(client, feedback(**{field: ...}))
    assert response.status_code == 422
    assert response.json() == validation(field, f"Object missing required field `{field}`")
    assert await sql.fetchval("SELECT count(*) FROM feedback") == 0


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"rating": "UP"}, "rating", "Invalid enum value 'UP'"),
        ({"rating": "Down"}, "rating", "Invalid enum value 'Down'"),
        ({"rating": "meh"}, "rating", "Invalid enum value 'meh'"),
        ({"rating": 1}, "rating", "Expected `str`, got `int`"),
        ({"search_mode": "QUICK"}, "search_mode", "Invalid enum value 'QUICK'"),
        ({"search_mode": "fast"}, "search_mode", "Invalid enum value 'fast'"),
        ({"query": ""}, "query", "Expected `str` of length >= 1"),
        ({"query": "q" * 1001}, "query", "Expected `str` of length <= 1000"),
        ({"query": "   "}, "query", "must not be blank"),
        ({"response_snippet": ""}, "response_snippet", "Expected `str` of length >= 1"),
        ({"comment": "c" * 1001}, "comment", "Expected `str` of length <= 1000"),
        ({"comment": 5}, "comment", "Expected `str | null`, got `int`"),
    ],
)
async def test_invalid_values(
    client: httpx.AsyncClient, sql, fields: dict, field: str, problem: str
) -> None:
    response = await post(client, feedback(**fields))
    assert response.status_code == 422
    assert response.json() == validation(field, problem)
    assert await sql.fetchval("SELECT count(*) FROM feedback") == 0


@pytest.mark.parametrize(
    ("fields", "column", "stored"),
    [
        ({"rating": "down", "search_mode": "quick"}, "rating", "down"),
        ({"search_mode": "deep"}, "search_mode", "deep"),
        ({"query": "q"}, "query", "q"),
        ({"query": "q" * 1000}, "query", "q" * 1000),
        ({"comment": "c" * 1000}, "comment", "c" * 1000),
        ({"comment": None}, "comment", None),
        ({}, "comment", None),
    ],
    ids=[
        "down-quick",
        "deep",
        "query-1",
        "query-1000",
        "comment-1000",
        "comment-null",
        "no-comment",
    ],
)
async def test_valid_values_stored(
    client: httpx.AsyncClient, sql, fields: dict, column: str, stored: Any
) -> None:
    response = await post(client, feedback(**fields))
    assert response.status_code == 201
    assert await sql.fetchval(f"SELECT {column} FROM feedback") == stored  # noqa: S608


async def test_clashing_id_is_regenerated(
    client: httpx.AsyncClient, sql, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = (await post(client, feedback())).json()["feedback_id"]
    issued = iter([first, "f_0000cafe"])
    monkeypatch.setattr(ids, "new_id", lambda prefix: next(issued))
    response = await post(client, feedback(query="second"))
    assert response.status_code == 201
    assert response.json()["feedback_id"] == "f_0000cafe"
    rows = dict(await sql.fetch("SELECT feedback_id, query FROM feedback"))
    assert rows == {first: "best tank build", "f_0000cafe": "second"}
