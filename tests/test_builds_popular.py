"""GET /builds/popular (periods, ordering, templates) and the official templates (seeding, list)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from aggregators import keys
from service.builds import popular as popular_module
from service.builds.store import seed_templates
from service.contract.gamedata import TEMPLATES
from tests.conftest import ROOT, Stores
from tests.factories import (
    API,
    ITEM_KEYS,
    add_votes,
    create_build,
    new_session,
    set_created_at,
    validation,
)

DAY = timedelta(days=1)


async def popular(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{API}/builds/popular", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["count"] == len(body["builds"])
    return body


async def popular_names(client: httpx.AsyncClient, **params: Any) -> list[str]:
    return [b["name"] for b in (await popular(client, **params))["builds"]]


@pytest.fixture
async def voted(client: httpx.AsyncClient, sql) -> dict[str, str]:
    """Builds with votes at known ages; tallies on builds match the votes inserted."""
    # Taken here, not at import: the suite may reach this test minutes after collection,
    # and edge_in sits 5 minutes inside the week.
    now = datetime.now(UTC)
    await seed_templates()
    now = datetime.now(UTC)  # not import time: a slow suite would move the week edges
    session = new_session()
    builds = {
        name: (await create_build(client, session, name=name, is_public=name != "private"))
        for name in ("x", "y", "z", "w", "old", "private", "unvoted", "edge_in", "edge_out")
    }
    ids = {name: b["build_id"] for name, b in builds.items()}
    for name, age in (("y", 3), ("w", 2), ("z", 1), ("edge_out", 5), ("edge_in", 4)):
        await set_created_at(sql, [ids[name]], now - timedelta(days=60 + age))
    await add_votes(sql, ids["x"], [5], at=now - timedelta(hours=1))
    await add_votes(sql, ids["x"], [5, 5, 5, 5], at=now - 20 * DAY)
    await add_votes(sql, ids["y"], [4, 4], at=now - 2 * DAY)
    await add_votes(sql, ids["w"], [4, 4], at=now - 2 * DAY)
    await add_votes(sql, ids["z"], [3, 3, 2], at=now - 3 * DAY)
    await add_votes(sql, ids["old"], [5] * 6, at=now - 40 * DAY)
    await add_votes(sql, ids["private"], [5] * 4, at=now - timedelta(hours=1))
    await add_votes(sql, ids["edge_in"], [1], at=now - 7 * DAY + timedelta(minutes=5))
    await add_votes(sql, ids["edge_out"], [1], at=now - 7 * DAY - timedelta(minutes=5))
    template = TEMPLATES[0].build_id
    await add_votes(sql, template, [5, 5, 5], at=now - timedelta(hours=2))
    ids["template"] = template
    return ids


@pytest.mark.usefixtures("voted")
async def test_default_is_week_limit_5_without_templates(client: httpx.AsyncClient) -> None:
    body = await popular(client)
    assert (body["period"], body["count"]) == ("week", 5)
    # Week sums: z 8 (3 votes), w 8 (2, newer), y 8 (2), x 5, edge_in 1.
    assert [b["name"] for b in body["builds"]] == ["z", "w", "y", "x", "edge_in"]
    assert {frozenset(b) for b in body["builds"]} == {ITEM_KEYS}
    x = body["builds"][3]
    assert (x["rating"], x["vote_count"], x["is_template"], x["created_by"]) == (
        5.0,
        5,
        False,
        "anonymous",
    )


@pytest.mark.usefixtures("voted")
@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("day", ["x"]),
        ("week", ["z", "w", "y", "x", "edge_in"]),
        ("month", ["x", "z", "w", "y", "edge_in", "edge_out"]),
        ("all", ["old", "x", "z", "w", "y", "edge_in", "edge_out"]),
    ],
)
async def test_periods(client: httpx.AsyncClient, period: str, expected: list[str]) -> None:
    body = await popular(client, period=period, limit=20)
    assert body["period"] == period
    assert [b["name"] for b in body["builds"]] == expected


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("day", ["Classic Tank - Paladin", "x"]),
        ("week", ["Classic Tank - Paladin", "z", "w", "y", "x", "edge_in"]),
        ("all", ["old", "x", "Classic Tank - Paladin", "z", "w", "y", "edge_in", "edge_out"]),
    ],
)
@pytest.mark.usefixtures("voted")
async def test_include_templates(client: httpx.AsyncClient, period: str, expected: list) -> None:
    names = await popular_names(client, period=period, include_templates="true", limit=20)
    assert names == expected
    without = await popular_names(client, period=period, include_templates="false", limit=20)
    assert without == [n for n in expected if n != "Classic Tank - Paladin"]


@pytest.mark.usefixtures("voted")
async def test_limit(client: httpx.AsyncClient) -> None:
    assert await popular_names(client, limit=2) == ["z", "w"]
    assert await popular_names(client, limit=1, period="all") == ["old"]
    assert len(await popular_names(client, limit=20, period="all")) == 7


async def test_no_votes_no_popular_builds(client: httpx.AsyncClient) -> None:
    await create_build(client, new_session())
    assert await popular(client, period="all") == {"builds": [], "period": "all", "count": 0}


@pytest.mark.parametrize(
    ("params", "field", "problem"),
    [
        ({"limit": 0}, "limit", "Expected `int` >= 1"),
        ({"limit": 21}, "limit", "Expected `int` <= 20"),
        ({"period": "year"}, "period", "Invalid enum value 'year'"),
        ({"period": "Week"}, "period", "Invalid enum value 'Week'"),
        ({"include_templates": "maybe"}, "include_templates", "Expected `bool`, got `str`"),
    ],
)
async def test_bad_parameters(
    client: httpx.AsyncClient, params: dict, field: str, problem: str
) -> None:
    response = await client.get(f"{API}/builds/popular", params=params)
    assert response.status_code == 422
    assert response.json() == validation(field, problem)


# ---- templates ----------------------------------------------------------------------------


async def test_templates_list(client: httpx.AsyncClient, sql) -> None:
    assert (await client.get(f"{API}/builds/templates")).json() == {"templates": [], "count": 0}
    await seed_templates()
    await create_build(client, new_session(), name="community build")
    response = await client.get(f"{API}/builds/templates")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 12
    assert {t["build_id"] for t in body["templates"]} == {t.build_id for t in TEMPLATES}
    for template in body["templates"]:
        assert template["is_template"] is True
        assert template["is_public"] is True
        assert template["created_by"] == "MyAshes Official"
        assert template["share_url"] == f"https://myashes.ai/?build={template['build_id']}"
    paladin = next(t for t in body["templates"] if t["name"] == "Classic Tank - Paladin")
    assert (paladin["primary_archetype"], paladin["secondary_archetype"], paladin["race"]) == (
        "tank",
        "cleric",
        "kaelar",
    )
    assert paladin["class_name"] == "Paladin"
    owners = await sql.fetch("SELECT DISTINCT owner_session FROM builds WHERE is_template")
    assert [o[0] for o in owners] == [None]


async def test_seeding_is_idempotent(client: httpx.AsyncClient, sql) -> None:
    await seed_templates()
    first = await sql.fetch("SELECT build_id, created_at FROM builds ORDER BY build_id")
    template = first[0]["build_id"]
    await add_votes(sql, template, [4, 5])
    await sql.execute("UPDATE builds SET name = 'drifted' WHERE build_id = $1", template)
    await seed_templates()
    second = await sql.fetch("SELECT build_id, created_at FROM builds ORDER BY build_id")
    assert second == first
    assert len(second) == 12
    row = await sql.fetchrow(
        "SELECT name, rating_sum, vote_count FROM builds WHERE build_id = $1", template
    )
    expected_name = next(t.name for t in TEMPLATES if t.build_id == template)
    assert tuple(row) == (expected_name, 9, 2)
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 2


@pytest.mark.usefixtures("app")
async def test_seed_command_is_idempotent(stores: Stores, sql) -> None:
    env = {
        **os.environ,
        "ENV": "test",
        "DATABASE_URL": stores.database_url,
        "VALKEY_URL": stores.valkey_url,
    }
    for _ in range(2):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service",
            "seed-templates",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        assert "official templates seeded: 12" in stderr.decode()
    rows = await sql.fetch("SELECT build_id FROM builds WHERE is_template ORDER BY build_id")
    assert [r[0] for r in rows] == sorted(t.build_id for t in TEMPLATES)


async def test_popular_builds_of_a_period_are_a_cached_view(client, app, sql, valkey):
    """A period's ranking aggregates build_votes (`all` too: networks are counted per build):
    it lives in Valkey, fresh for VIEW_FRESH_S."""
    now = datetime.now(UTC)
    session = new_session()
    first = (await create_build(client, session, name="first"))["build_id"]
    second = (await create_build(client, session, name="second"))["build_id"]
    await add_votes(sql, first, [3], at=now - timedelta(hours=1))
    assert await popular_names(client, period="day") == ["first"]
    key = keys.popular_builds("day", False)
    assert 0 < await valkey.ttl(key) <= keys.VIEW_KEEP_S
    await add_votes(sql, second, [5], at=now - timedelta(minutes=1))
    assert await popular_names(client, period="day") == ["first"]  # the fresh copy
    await valkey.delete(key)
    assert await popular_names(client, period="day") == ["second", "first"]
    assert await popular_names(client, period="all") == ["second", "first"]
    assert 0 < await valkey.ttl(keys.popular_builds("all", False)) <= keys.VIEW_KEEP_S
    assert app.ctx.popular_builds.rebuilds == 3


async def test_a_copy_of_an_older_shape_is_rebuilt(client, sql, valkey):
    """A rolling deploy meets copies the previous version wrote (list items instead of
    ranked ids): they are treated as a miss and rebuilt, never a 500."""
    build = await create_build(client, new_session(), name="fresh")
    await add_votes(sql, build["build_id"], [4], at=datetime.now(UTC) - timedelta(hours=1))
    old = {k: v for k, v in build.items() if k in ITEM_KEYS and k != "creator"}
    key = keys.popular_builds("day", False)
    await valkey.set(key, json.dumps({"built_at": time.time(), "builds": [old]}))
    body = await popular(client, period="day")
    assert [b["name"] for b in body["builds"]] == ["fresh"]
    assert body["builds"][0]["creator"] == {"display_name": "anonymous", "is_authenticated": False}
    assert json.loads(await valkey.get(key))["build_ids"] == [build["build_id"]]


async def test_longer_periods_are_rebuilt_less_often(client, app, sql, valkey):
    """Ranking a month or all votes costs seconds at 1M votes and moves slowly: a copy two
    minutes old is still served for `all`, while `day` (60 s) is rebuilt."""
    build = await create_build(client, new_session(), name="first")
    await add_votes(sql, build["build_id"], [4], at=datetime.now(UTC) - timedelta(hours=1))
    for period in ("day", "all"):
        assert await popular_names(client, period=period) == ["first"]
        key = keys.popular_builds(period, False)
        assert await valkey.ttl(key) > 60 * popular_module.SLOWER[period]  # kept past fresh
        copy = json.loads(await valkey.get(key))
        copy["built_at"] -= 120
        await valkey.set(key, json.dumps(copy), ex=keys.VIEW_KEEP_S)
    later = await create_build(client, new_session(), name="later")
    await add_votes(sql, later["build_id"], [5, 5], at=datetime.now(UTC) - timedelta(hours=1))
    assert await popular_names(client, period="day") == ["later", "first"]
    assert await popular_names(client, period="all") == ["first"]
