"""GET /builds: envelope, public only, paging and has_more, the sort orders and tie-breaks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.factories import (
    API,
    ITEM_KEYS,
    add_votes,
    create_build,
    list_builds,
    new_session,
    set_created_at,
    validation,
)

T0 = datetime(2026, 1, 14, 10, 0, tzinfo=UTC)


async def walk(client: httpx.AsyncClient, limit: int, **params: Any) -> list[str]:
    """Every page until has_more is false; checks each page's envelope on the way."""
    ids: list[str] = []
    page = 1
    while True:
        body = await list_builds(client, page=page, limit=limit, **params)
        assert (body["page"], body["limit"]) == (page, limit)
        assert len(body["builds"]) <= limit
        assert body["has_more"] == ((page - 1) * limit + len(body["builds"]) < body["total"])
        ids += [b["build_id"] for b in body["builds"]]
        if not body["has_more"]:
            assert len(ids) == body["total"]
            return ids
        page += 1


# ---- envelope, visibility, paging -----------------------------------------------------------


async def test_list_shows_public_builds_only(client: httpx.AsyncClient) -> None:
    owner = new_session()
    public = await create_build(client, owner, name="public one", description="d")
    await create_build(client, owner, name="private one", is_public=False)
    response = await client.get(f"{API}/builds", headers={"X-Session-ID": owner})
    assert response.status_code == 200
    assert response.json() == {
        "builds": [{k: public[k] for k in sorted(ITEM_KEYS)}],
        "total": 1,
        "total_capped": False,
        "page": 1,
        "limit": 20,
        "has_more": False,
    }


async def test_default_paging_and_has_more(client: httpx.AsyncClient, sql) -> None:
    session = new_session()
    created = [
        (await create_build(client, session, name=f"b{i:02}"))["build_id"] for i in range(25)
    ]
    for i, build_id in enumerate(created):
        await set_created_at(sql, [build_id], T0 + timedelta(minutes=i))
    first = await list_builds(client)
    assert (first["total"], first["page"], first["limit"], first["has_more"]) == (25, 1, 20, True)
    assert [b["name"] for b in first["builds"]] == [f"b{i:02}" for i in range(24, 4, -1)]
    second = await list_builds(client, page=2)
    assert (second["total"], second["page"], second["has_more"]) == (25, 2, False)
    assert [b["name"] for b in second["builds"]] == ["b04", "b03", "b02", "b01", "b00"]
    beyond = await list_builds(client, page=3)
    assert (beyond["builds"], beyond["total"], beyond["has_more"]) == ([], 25, False)
    exact = await list_builds(client, limit=25)
    assert (len(exact["builds"]), exact["has_more"]) == (25, False)
    assert (await list_builds(client, limit=1))["has_more"] is True
    last = await list_builds(client, page=2**31 - 1, limit=100)
    assert (last["builds"], last["total"], last["has_more"]) == ([], 25, False)
    assert len((await list_builds(client, limit=100))["builds"]) == 25


@pytest.mark.parametrize(
    ("params", "field", "problem"),
    [
        ({"limit": 0}, "limit", "Expected `int` >= 1"),
        ({"limit": 101}, "limit", "Expected `int` <= 100"),
        ({"limit": -5}, "limit", "Expected `int` >= 1"),
        ({"limit": "ten"}, "limit", "Expected `int`, got `str`"),
        ({"page": 0}, "page", "Expected `int` >= 1"),
        ({"page": -1}, "page", "Expected `int` >= 1"),
        ({"page": "1.5"}, "page", "Expected `int`, got `str`"),
        ({"page": 2**31}, "page", "Expected `int` <= 2147483647"),
        ({"page": 10**20}, "page", "Expected `int` <= 2147483647"),
        ({"search": "ab"}, "search", "Expected `str` of length >= 3"),
        ({"search": "a" * 101}, "search", "Expected `str` of length <= 100"),
        ({"sort": "best"}, "sort", "Invalid enum value 'best'"),
        ({"is_template": "maybe"}, "is_template", "Expected `bool | null`, got `str`"),
        ({"race": "elf"}, "race", "unknown value 'elf'"),
        ({"primary_archetype": "tan"}, "primary_archetype", "unknown value 'tan'"),
        ({"secondary_archetype": "x"}, "secondary_archetype", "unknown value 'x'"),
    ],
)
async def test_bad_query_parameters(
    client: httpx.AsyncClient, params: dict, field: str, problem: str
) -> None:
    response = await client.get(f"{API}/builds", params=params)
    assert response.status_code == 422
    assert response.json() == validation(field, problem)


async def test_limit_and_search_bounds_inclusive(client: httpx.AsyncClient) -> None:
    for params in ({"limit": 1}, {"limit": 100}, {"search": "abc"}, {"search": "a" * 100}):
        response = await client.get(f"{API}/builds", params=params)
        assert response.status_code == 200, params


# ---- sorting ------------------------------------------------------------------------------


async def _builds(client: httpx.AsyncClient, sql, count: int) -> list[str]:
    session = new_session()
    ids = [(await create_build(client, session, name=f"n{i}"))["build_id"] for i in range(count)]
    return ids


async def test_sort_newest(client: httpx.AsyncClient, sql) -> None:
    a, b, c = await _builds(client, sql, 3)
    await set_created_at(sql, [a], T0 + timedelta(hours=2))
    await set_created_at(sql, [b], T0)
    await set_created_at(sql, [c], T0 + timedelta(hours=1))
    for params in ({}, {"sort": "newest"}):
        body = await list_builds(client, **params)
        assert [x["build_id"] for x in body["builds"]] == [a, c, b]


async def test_sort_rating(client: httpx.AsyncClient, sql) -> None:
    """Average desc (no votes = 0), then vote_count desc, then the unique tie-break."""
    five_one, five_two, four_half, one, none_a, none_b = await _builds(client, sql, 6)
    await add_votes(sql, five_one, [5])
    await add_votes(sql, five_two, [5, 5])
    await add_votes(sql, four_half, [4, 5])
    await add_votes(sql, one, [1, 1, 1])
    body = await list_builds(client, sort="rating")
    order = [x["build_id"] for x in body["builds"]]
    assert order[:4] == [five_two, five_one, four_half, one]
    assert set(order[4:]) == {none_a, none_b}
    assert [x["rating"] for x in body["builds"]] == [5.0, 5.0, 4.5, 1.0, None, None]
    assert [x["vote_count"] for x in body["builds"]] == [2, 1, 2, 3, 0, 0]


async def test_sort_rating_uses_exact_average(client: httpx.AsyncClient, sql) -> None:
    """4.33 and 4.25 both show as 4.3; the higher exact average comes first."""
    low, high = await _builds(client, sql, 2)
    await add_votes(sql, low, [5, 4, 4, 4])  # 4.25
    await add_votes(sql, high, [5, 4, 4])  # 4.33
    body = await list_builds(client, sort="rating")
    assert [(x["build_id"], x["rating"]) for x in body["builds"]] == [(high, 4.3), (low, 4.3)]


async def test_sort_popular(client: httpx.AsyncClient, sql) -> None:
    """vote_count desc, then created_at desc."""
    old_many, new_many, few, none_old, none_new = await _builds(client, sql, 5)
    await add_votes(sql, old_many, [1, 1, 1])
    await add_votes(sql, new_many, [2, 2, 2])
    await add_votes(sql, few, [5])
    await set_created_at(sql, [old_many, none_old], T0)
    await set_created_at(sql, [new_many, none_new, few], T0 + timedelta(days=1))
    body = await list_builds(client, sort="popular")
    assert [x["build_id"] for x in body["builds"]] == [new_many, old_many, few, none_new, none_old]


@pytest.mark.parametrize("sort", ["newest", "rating", "popular"])
async def test_pages_never_repeat_or_skip_with_ties(
    client: httpx.AsyncClient, sql, sort: str
) -> None:
    """45 builds sharing created_at and vote tallies in a few groups: walk every page size."""
    ids = await _builds(client, sql, 45)
    await set_created_at(sql, ids, T0)
    for i, build_id in enumerate(ids):
        group = i % 3
        if group:
            await add_votes(sql, build_id, [group + 2] * group)
    for limit in (1, 4, 7, 20, 45, 100):
        walked = await walk(client, limit, sort=sort)
        assert len(walked) == len(set(walked)) == 45, limit
        assert set(walked) == set(ids)
    full = [b["build_id"] for b in (await list_builds(client, sort=sort, limit=100))["builds"]]
    assert await walk(client, 7, sort=sort) == full


async def test_paging_with_filters_and_ties(client: httpx.AsyncClient, sql) -> None:
    session = new_session()
    tanks = [
        (await create_build(client, session, name=f"t{i}", race="vek"))["build_id"]
        for i in range(12)
    ]
    for i in range(5):
        await create_build(client, session, name=f"other{i}", race="dunir")
    await set_created_at(sql, tanks, T0)
    walked = await walk(client, 5, race="vek", sort="popular")
    assert sorted(walked) == sorted(tanks)
