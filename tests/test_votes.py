"""Votes: durable group commit, exact tallies under concurrency, contract errors."""

from __future__ import annotations

import asyncio
import random

import pytest

from aggregators import keys
from aggregators.votes import Outcome, VoteAggregator, project_tallies

OWNER = "sess_" + "0" * 24


def session(i: int) -> str:
    return f"sess_{i:024x}"


async def new_build(client, *, is_public=True, owner=OWNER) -> str:
    r = await client.post(
        "/api/v1/builds",
        json={
            "name": "Vote me",
            "primary_archetype": "tank",
            "secondary_archetype": "cleric",
            "race": "kaelar",
            "is_public": is_public,
        },
        headers={"X-Session-ID": owner},
    )
    assert r.status_code == 201, r.text
    return r.json()["build_id"]


async def vote(client, build_id, rating, sess):
    headers = {"X-Session-ID": sess} if sess else {}
    return await client.post(
        f"/api/v1/builds/{build_id}/vote", json={"rating": rating}, headers=headers
    )


async def test_vote_is_durable_and_projected(client, sql, valkey):
    build_id = await new_build(client)
    updated_before = await sql.fetchval("SELECT updated_at FROM builds")
    r = await vote(client, build_id, 4, session(1))
    assert r.status_code == 200
    assert r.json() == {"build_id": build_id, "your_rating": 4, "avg_rating": 4.0, "vote_count": 1}
    assert r.headers["x-session-id"] == session(1)
    rows = await sql.fetch("SELECT build_id, session_id, rating FROM build_votes")
    assert [tuple(x) for x in rows] == [(build_id, session(1), 4)]
    tally = await sql.fetchrow("SELECT rating_sum, vote_count, updated_at FROM builds")
    assert (tally["rating_sum"], tally["vote_count"]) == (4, 1)
    assert tally["updated_at"] == updated_before  # votes do not touch updated_at
    assert await valkey.hgetall(keys.rating(build_id)) == {"rating_sum": "4", "vote_count": "1"}
    assert 0 < await valkey.ttl(keys.rating(build_id)) <= keys.RATING_TTL_S
    r = await vote(client, build_id, 5, session(2))
    assert r.json() == {"build_id": build_id, "your_rating": 5, "avg_rating": 4.5, "vote_count": 2}
    r = await vote(client, build_id, 4, session(3))
    assert r.json()["avg_rating"] == 4.3  # 13 / 3, rounded to one decimal
    got = (await client.get(f"/api/v1/builds/{build_id}")).json()
    assert (got["rating"], got["vote_count"]) == (4.3, 3)


async def test_second_vote_by_same_session_is_409(client, sql):
    build_id = await new_build(client)
    assert (await vote(client, build_id, 2, session(7))).status_code == 200
    r = await vote(client, build_id, 5, session(7))
    assert r.status_code == 409
    assert r.json() == {
        "error": "already_voted",
        "message": f"This session has already voted on build {build_id}",
        "status": 409,
    }
    assert await sql.fetchval("SELECT rating_sum FROM builds") == 2


@pytest.mark.parametrize("header", [None, "sess_ABC", "sess_" + "g" * 24, "nope"])
async def test_vote_without_a_sent_session_is_400(client, sql, header):
    build_id = await new_build(client)
    r = await vote(client, build_id, 3, header)
    assert r.status_code == 400
    assert r.json() == {
        "error": "session_required",
        "message": "Voting needs the X-Session-ID header (sess_ + 24 hex)",
        "status": 400,
    }
    assert r.headers["x-session-id"].startswith("sess_")  # a fresh one, echoed as always
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0


@pytest.mark.parametrize("rating", [0, 6, 3.5, "4", True, None, -1, 10**30])
async def test_rating_must_be_an_integer_from_1_to_5(client, sql, rating):
    build_id = await new_build(client)
    r = await vote(client, build_id, rating, session(1))
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error"
    assert body["status"] == 422
    assert body["details"][0]["field"] == "rating"
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0


async def test_missing_rating_is_422(client):
    build_id = await new_build(client)
    r = await client.post(
        f"/api/v1/builds/{build_id}/vote", json={}, headers={"X-Session-ID": session(1)}
    )
    assert r.status_code == 422
    assert r.json()["details"] == [
        {"field": "rating", "problem": "Object missing required field `rating`"}
    ]


async def test_vote_on_unknown_or_hidden_build_is_404(client, sql):
    private = await new_build(client, is_public=False)
    for build_id in ("b_deadbeef", private, "not-an-id"):
        r = await vote(client, build_id, 3, session(1))
        assert r.status_code == 404
        assert r.json() == {
            "error": "build_not_found",
            "message": f"Build {build_id} not found",
            "status": 404,
        }
    assert (await vote(client, private, 5, OWNER)).status_code == 200  # the owner sees it
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 1


async def test_vote_for_a_build_deleted_before_commit_is_404(client, app, sql):
    build_id = await new_build(client)
    await sql.execute("DELETE FROM builds WHERE build_id = $1", build_id)
    result = await app.ctx.votes.submit(build_id, session(1), 4)
    assert result.outcome.value == "not_found"
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0


async def test_1000_concurrent_sessions_on_one_build_are_exact(client, sql, app):
    build_id = await new_build(client)
    ratings = [random.randint(1, 5) for _ in range(1000)]
    responses = await asyncio.gather(
        *(vote(client, build_id, rating, session(i)) for i, rating in enumerate(ratings))
    )
    assert [r.status_code for r in responses] == [200] * 1000
    assert max(r.json()["vote_count"] for r in responses) == 1000
    row = await sql.fetchrow("SELECT rating_sum, vote_count FROM builds")
    assert (row["rating_sum"], row["vote_count"]) == (sum(ratings), 1000)
    got = (await client.get(f"/api/v1/builds/{build_id}")).json()
    assert got["vote_count"] == 1000
    assert got["rating"] == float(f"{sum(ratings) / 1000 + 1e-9:.1f}")
    assert app.ctx.votes.stats.flushes < 1000  # they were group-committed


async def test_concurrent_duplicates_get_one_200_and_the_rest_409(client, sql):
    build_id = await new_build(client)
    attempts = [(s, random.randint(1, 5)) for s in range(50) for _ in range(5)]
    random.shuffle(attempts)
    responses = await asyncio.gather(*(vote(client, build_id, r, session(s)) for s, r in attempts))
    by_session: dict[int, list[int]] = {}
    for (s, _), response in zip(attempts, responses, strict=True):
        by_session.setdefault(s, []).append(response.status_code)
    assert all(sorted(codes) == [200, 409, 409, 409, 409] for codes in by_session.values())
    winners = {
        s: rating
        for (s, rating), response in zip(attempts, responses, strict=True)
        if response.status_code == 200
    }
    row = await sql.fetchrow("SELECT rating_sum, vote_count FROM builds")
    assert (row["rating_sum"], row["vote_count"]) == (sum(winners.values()), 50)
    assert await sql.fetchval("SELECT sum(rating) FROM build_votes") == sum(winners.values())


async def test_delete_build_takes_its_votes(client, sql):
    build_id = await new_build(client)
    await vote(client, build_id, 5, session(1))
    r = await client.delete(f"/api/v1/builds/{build_id}", headers={"X-Session-ID": OWNER})
    assert r.status_code == 200
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0


# Votes inserted directly in SQL: sessions far from the ones the tests send.
SEEDED = 200_000
SEED_SQL = """
INSERT INTO build_votes (build_id, session_id, rating, created_at)
SELECT $1, 'sess_' || lpad(to_hex(g), 24, '0'), 1 + g % 5, now()
FROM generate_series(1::bigint << 40, (1::bigint << 40) + $2 - 1) g
"""


async def seed_votes(sql, build_id: str, count: int = SEEDED) -> tuple[int, int]:
    await sql.execute(SEED_SQL, build_id, count)
    rating_sum, vote_count = await sql.fetchrow(
        "UPDATE builds b SET rating_sum = t.s, vote_count = t.n"
        " FROM (SELECT sum(rating)::int s, count(*)::int n FROM build_votes) t"
        " RETURNING b.rating_sum, b.vote_count"
    )
    return rating_sum, vote_count


async def test_tallies_stay_exact_on_a_build_with_many_votes(client, sql, valkey):
    build_id = await new_build(client)
    seeded_sum, seeded_count = await seed_votes(sql, build_id)
    assert seeded_count == SEEDED
    fresh = [(session(i), random.randint(1, 5)) for i in range(1, 301)]
    repeats = [(f"sess_{(1 << 40) + i:024x}", 5) for i in range(0, 3000, 100)]  # seeded ones
    attempts = fresh + repeats
    random.shuffle(attempts)
    responses = await asyncio.gather(*(vote(client, build_id, r, s) for s, r in attempts))
    codes = {s: response.status_code for (s, _), response in zip(attempts, responses, strict=True)}
    assert [codes[s] for s, _ in fresh] == [200] * len(fresh)
    assert [codes[s] for s, _ in repeats] == [409] * len(repeats)
    want = (seeded_sum + sum(r for _, r in fresh), SEEDED + len(fresh))
    row = await sql.fetchrow("SELECT rating_sum, vote_count FROM builds")
    assert (row["rating_sum"], row["vote_count"]) == want
    recount = await sql.fetchrow("SELECT sum(rating)::int, count(*)::int FROM build_votes")
    assert tuple(recount) == want
    counts = sorted(r.json()["vote_count"] for r in responses if r.status_code == 200)
    assert counts[-1] == want[1]
    assert await valkey.hgetall(keys.rating(build_id)) == {
        "rating_sum": str(want[0]),
        "vote_count": str(want[1]),
    }


async def test_the_write_path_adds_to_the_tallies_and_never_recounts(client, sql):
    """A batch adds what it inserted to the locked row: a drift put there by hand stays as it
    is (repairing it is reconcile-tallies' job), where a recount would have erased it."""
    build_id = await new_build(client)
    assert (await vote(client, build_id, 3, session(1))).status_code == 200
    await sql.execute("UPDATE builds SET rating_sum = 100, vote_count = 10")
    r = await vote(client, build_id, 4, session(2))
    assert r.json()["vote_count"] == 11
    row = await sql.fetchrow("SELECT rating_sum, vote_count FROM builds")
    assert (row["rating_sum"], row["vote_count"]) == (104, 11)


async def test_back_to_back_votes_never_wait_for_the_tick(client, app, sql):
    """A vote queued while a lane gives its connection back gets a lane at once: with a tick
    of an hour, 30 votes one after the other still each commit within seconds."""
    build_id = await new_build(client)
    votes = VoteAggregator(
        app.ctx.db, app.ctx.valkey, max_batch=10, max_inflight=1, interval_s=3600
    )
    votes.start()
    try:
        for i in range(30):
            result = await asyncio.wait_for(votes.submit(build_id, session(i + 1), 3), 10)
            assert (result.outcome, result.vote_count) == (Outcome.ACCEPTED, i + 1)
    finally:
        await votes.stop(5)
    assert await sql.fetchval("SELECT vote_count FROM builds") == 30


async def test_a_late_projection_never_replaces_newer_tallies(valkey):
    """Workers project on their own; one retrying through a Valkey outage can land after
    another's newer tallies. A lower vote_count is skipped (votes only add); a repair forces."""
    key = keys.rating("b_0000abcd")
    await valkey.delete(key)
    await project_tallies(valkey, {"b_0000abcd": (14, 4)})
    await project_tallies(valkey, {"b_0000abcd": (9, 3)})  # the late one
    assert await valkey.hgetall(key) == {"rating_sum": "14", "vote_count": "4"}
    assert 0 < await valkey.ttl(key) <= keys.RATING_TTL_S
    await project_tallies(valkey, {"b_0000abcd": (18, 5)})
    assert await valkey.hgetall(key) == {"rating_sum": "18", "vote_count": "5"}
    await project_tallies(valkey, {"b_0000abcd": (9, 3)}, force=True)  # reconcile's repair
    assert await valkey.hgetall(key) == {"rating_sum": "9", "vote_count": "3"}
