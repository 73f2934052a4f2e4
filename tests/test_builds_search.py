"""GET /builds?search=: at least 3 letters or digits (else 422), answered through an index,
`total` exact up to 10,000 then capped (`total_capped`), pages end at the cap."""

from __future__ import annotations

import json

import asyncpg
import httpx
import pytest

from service.builds import queries
from service.contract import schemas
from tests.factories import API, create_build, error, list_builds, new_session, validation

MIN_ALNUM = "must contain at least 3 letters or digits"


@pytest.mark.parametrize(
    ("search", "problem"),
    [
        ("%%", "Expected `str` of length >= 3"),
        ("ab", "Expected `str` of length >= 3"),
        ("%%%", MIN_ALNUM),
        ("%%%%%%", MIN_ALNUM),
        ("a.b", MIN_ALNUM),
        ("__x__", MIN_ALNUM),
        ("  a  b  ", MIN_ALNUM),
        ("-- ; --", MIN_ALNUM),
        ("\\%\\%\\%", MIN_ALNUM),
    ],
)
async def test_short_or_punctuation_only_searches_are_422(
    client: httpx.AsyncClient, search: str, problem: str
) -> None:
    response = await client.get(f"{API}/builds", params={"search": search})
    assert response.status_code == 422
    assert response.json() == validation("search", problem)


@pytest.mark.parametrize(
    "search", ["abc", "a.b.c", "--tank--", "1%2%3", "Äöü", "\uff11\uff12\uff13", "x" * 100]
)
async def test_three_letters_or_digits_are_enough(client: httpx.AsyncClient, search: str) -> None:
    response = await client.get(f"{API}/builds", params={"search": search})
    assert response.status_code == 200, response.text
    assert response.json()["total_capped"] is False


async def test_punctuation_around_a_word_still_finds_it(client: httpx.AsyncClient) -> None:
    session = new_session()
    await create_build(client, session, name="Iron -- wall")
    await create_build(client, session, name="Iron wall")
    body = await list_builds(client, search="on -- wa")
    assert [b["name"] for b in body["builds"]] == ["Iron -- wall"]


async def _bulk_builds(sql: asyncpg.Connection, count: int, name: str, start: int = 1) -> None:
    """`count` public builds straight into Postgres (the API would take minutes)."""
    await sql.execute(
        """
        INSERT INTO builds (build_id, name, primary_archetype, secondary_archetype, class_name,
                            race, is_public, is_template, owner_session, rating_sum, vote_count,
                            created_at, updated_at)
        SELECT 'b_' || lpad(to_hex(i), 8, '0'), $3 || ' ' || i, 'tank', 'cleric', 'Paladin',
               'kaelar', true, false, 'sess_' || repeat('0', 24), 0, 0,
               now() - i * interval '1 second', now()
        FROM generate_series($1::int, $1::int + $2::int - 1) i
        """,
        start,
        count,
        name,
    )
    await sql.execute("ANALYZE builds")


async def test_total_is_exact_up_to_10000(client: httpx.AsyncClient, sql) -> None:
    await _bulk_builds(sql, 10_000, "Stout wall")
    await _bulk_builds(sql, 5, "Other", start=20_000)
    body = await list_builds(client, search="stout")
    assert (body["total"], body["total_capped"], body["has_more"]) == (10_000, False, True)
    last = await list_builds(client, search="stout", page=500)
    assert (len(last["builds"]), last["total"], last["has_more"]) == (20, 10_000, False)
    assert last["builds"][-1]["name"] == "Stout wall 10000"
    assert (await list_builds(client, search="other"))["total"] == 5


async def test_total_is_capped_past_10000(client: httpx.AsyncClient, sql) -> None:
    await _bulk_builds(sql, 10_050, "Stout wall")
    for params in ({"search": "stout"}, {}, {"race": "kaelar", "sort": "rating"}):
        body = await list_builds(client, **params)
        assert (body["total"], body["total_capped"], body["has_more"]) == (10_000, True, True)
        assert len(body["builds"]) == 20
    # Pages reach the first 10,000 matches: the count never reads more than 10,001 rows.
    last = await list_builds(client, search="stout", page=500)
    assert (len(last["builds"]), last["total_capped"], last["has_more"]) == (20, True, False)
    beyond = await list_builds(client, search="stout", page=502)
    assert (beyond["builds"], beyond["total"], beyond["has_more"]) == ([], 10_000, False)


def _scans(plan: list[dict]) -> list[str]:
    out, todo = [], [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        todo += node.get("Plans", [])
        if node["Node Type"].endswith("Scan") and node.get("Relation Name") == "builds":
            out.append(node["Node Type"])
    return out


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize("search", ["abc", "a.b.c", "--tank--", "paladin", "%%wall"])
@pytest.mark.parametrize("sort", ["newest", "rating", "popular"])
async def test_every_accepted_search_is_answered_through_an_index(
    sql: asyncpg.Connection, search: str, sort: str
) -> None:
    """On a small table the planner would read it sequentially (cheapest by far): the
    statements the service sends, with the settings it sends them under, never do."""
    await _bulk_builds(sql, 200, "Stout wall")
    count_sql, page_sql, values = queries.list_statements(
        schemas.BuildListQuery(search=search, sort=sort)
    )
    async with sql.transaction():
        await sql.execute(queries.SEARCH_SETTINGS)
        for statement, args in ((count_sql, values[:-2]), (page_sql, values)):
            plan = json.loads(await sql.fetchval(f"EXPLAIN (FORMAT JSON) {statement}", *args))
            scans = _scans(plan)
            assert scans, plan
            assert "Seq Scan" not in scans, (statement, scans)


async def test_a_search_over_its_time_budget_is_503(
    client: httpx.AsyncClient, sql, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement timeout bounds what one search may cost (here 1 ms for 10,000 matches);
    the backend is free again and the next request is served."""
    await _bulk_builds(sql, 10_000, "Stout wall")
    monkeypatch.setattr(
        queries,
        "SEARCH_SETTINGS",
        "SET LOCAL enable_seqscan = off; SET LOCAL statement_timeout = 1",
    )
    response = await client.get(f"{API}/builds", params={"search": "stout"})
    assert response.status_code == 503
    assert response.json() == error(
        "service_unavailable", "Search for 'stout' took too long; try a more specific term", 503
    )
    assert response.headers["Retry-After"] == "5"
    assert (await client.get(f"{API}/builds", params={"limit": 1})).status_code == 200
