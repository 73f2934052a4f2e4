"""PATCH and DELETE /builds/{id}: owner only, validation, hidden builds, read-only templates."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from service.builds.store import seed_templates
from service.contract.gamedata import TEMPLATES
from tests.factories import (
    API,
    add_votes,
    create_build,
    error,
    headers,
    new_session,
    not_found,
    validation,
)


async def test_owner_updates_name_description_visibility(client: httpx.AsyncClient, sql) -> None:
    owner = new_session()
    build = await create_build(client, owner, description="old")
    response = await client.patch(
        f"{API}/builds/{build['build_id']}",
        json={"name": "  Renamed  ", "description": "new text", "is_public": False},
        headers=headers(owner),
    )
    assert response.status_code == 200
    body = response.json()
    assert body == {
        **build,
        "name": "Renamed",
        "description": "new text",
        "is_public": False,
        "updated_at": body["updated_at"],
    }
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(build["updated_at"])
    row = await sql.fetchrow(
        "SELECT name, description, is_public, owner_session, created_at, updated_at FROM builds"
    )
    assert tuple(row)[:4] == ("Renamed", "new text", False, owner)
    assert row["updated_at"] > row["created_at"]


async def test_patch_keeps_omitted_fields(client: httpx.AsyncClient) -> None:
    owner = new_session()
    build = await create_build(client, owner, description="keep me", is_public=False)
    response = await client.patch(
        f"{API}/builds/{build['build_id']}", json={"name": "Only name"}, headers=headers(owner)
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["description"], body["is_public"]) == ("Only name", "keep me", False)


async def test_explicit_null_description_clears_it(client: httpx.AsyncClient, sql) -> None:
    owner = new_session()
    build = await create_build(client, owner, description="to be removed")
    response = await client.patch(
        f"{API}/builds/{build['build_id']}", json={"description": None}, headers=headers(owner)
    )
    assert response.status_code == 200
    assert response.json()["description"] is None
    assert response.json()["name"] == build["name"]
    row = await sql.fetchrow("SELECT name, description FROM builds")
    assert tuple(row) == (build["name"], None)


async def test_empty_patch_changes_nothing(client: httpx.AsyncClient) -> None:
    owner = new_session()
    build = await create_build(client, owner)
    response = await client.patch(
        f"{API}/builds/{build['build_id']}", json={}, headers=headers(owner)
    )
    assert response.status_code == 200
    assert response.json() == build


@pytest.mark.parametrize(
    "field",
    [
        "race",
        "primary_archetype",
        "secondary_archetype",
        "class_name",
        "is_template",
        "owner_session",
        "vote_count",
        "build_id",
        "created_at",
    ],
)
async def test_patch_other_fields_rejected(client: httpx.AsyncClient, sql, field: str) -> None:
    owner = new_session()
    build = await create_build(client, owner)
    response = await client.patch(
        f"{API}/builds/{build['build_id']}",
        json={"name": "ok", field: "vek"},
        headers=headers(owner),
    )
    assert response.status_code == 422
    assert response.json() == validation(field, f"Object contains unknown field `{field}`")
    assert await sql.fetchval("SELECT name FROM builds") == build["name"]


@pytest.mark.parametrize(
    ("patch", "field", "problem"),
    [
        ({"name": "   "}, "name", "must be 1-100 characters after trimming"),
        ({"name": "n" * 101}, "name", "must be 1-100 characters after trimming"),
        ({"name": None}, "name", "Expected `str`, got `null`"),
        ({"description": "d" * 2001}, "description", "Expected `str` of length <= 2000"),
        ({"is_public": None}, "is_public", "Expected `bool`, got `null`"),
        ({"is_public": "false"}, "is_public", "Expected `bool`, got `str`"),
    ],
)
async def test_patch_values_validated(
    client: httpx.AsyncClient, patch: dict, field: str, problem: str
) -> None:
    owner = new_session()
    build = await create_build(client, owner)
    response = await client.patch(
        f"{API}/builds/{build['build_id']}", json=patch, headers=headers(owner)
    )
    assert response.status_code == 422
    assert response.json() == validation(field, problem)


async def test_patch_limits_inclusive(client: httpx.AsyncClient) -> None:
    owner = new_session()
    build = await create_build(client, owner)
    response = await client.patch(
        f"{API}/builds/{build['build_id']}",
        json={"name": "n" * 100, "description": "d" * 2000},
        headers=headers(owner),
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["description"]) == ("n" * 100, "d" * 2000)


@pytest.mark.parametrize("intruder", [new_session(), None], ids=["other-session", "no-session"])
async def test_patch_by_non_owner_is_403(
    client: httpx.AsyncClient, sql, intruder: str | None
) -> None:
    build = await create_build(client, new_session())
    response = await client.patch(
        f"{API}/builds/{build['build_id']}",
        json={"name": "hijacked"},
        headers=headers(intruder) if intruder else {},
    )
    assert response.status_code == 403
    assert response.json() == error(
        "not_owner", f"Build {build['build_id']} belongs to another session", 403
    )
    assert await sql.fetchval("SELECT name FROM builds") == build["name"]


async def test_patch_of_another_sessions_private_build_is_404(
    client: httpx.AsyncClient, sql
) -> None:
    build = await create_build(client, new_session(), is_public=False)
    response = await client.patch(
        f"{API}/builds/{build['build_id']}", json={"name": "x"}, headers=headers(new_session())
    )
    assert response.status_code == 404
    assert response.json() == not_found(build["build_id"])
    assert await sql.fetchval("SELECT name FROM builds") == build["name"]


async def test_patch_unknown_build_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"{API}/builds/b_0000abcd", json={"name": "x"})
    assert response.status_code == 404
    assert response.json() == not_found("b_0000abcd")


async def test_templates_are_read_only(client: httpx.AsyncClient, sql) -> None:
    await seed_templates()
    build_id = TEMPLATES[0].build_id
    expected = error(
        "template_read_only", f"Build {build_id} is an official template and is read-only", 403
    )
    patch = await client.patch(
        f"{API}/builds/{build_id}", json={"is_public": False}, headers=headers(new_session())
    )
    assert patch.status_code == 403
    assert patch.json() == expected
    delete = await client.delete(f"{API}/builds/{build_id}")
    assert delete.status_code == 403
    assert delete.json() == expected
    assert await sql.fetchval("SELECT count(*) FROM builds WHERE is_template AND is_public") == 12


async def test_private_build_made_public_becomes_visible(client: httpx.AsyncClient) -> None:
    owner = new_session()
    build = await create_build(client, owner, is_public=False)
    url = f"{API}/builds/{build['build_id']}"
    assert (await client.get(url)).status_code == 404
    patched = await client.patch(url, json={"is_public": True}, headers=headers(owner))
    assert patched.status_code == 200
    assert (await client.get(url)).status_code == 200


# ---- DELETE -------------------------------------------------------------------------------


async def test_owner_deletes_build_and_its_votes(client: httpx.AsyncClient, sql) -> None:
    owner = new_session()
    doomed = await create_build(client, owner)
    kept = await create_build(client, owner, name="kept")
    await add_votes(sql, doomed["build_id"], [5, 4, 3])
    await add_votes(sql, kept["build_id"], [2])
    response = await client.delete(f"{API}/builds/{doomed['build_id']}", headers=headers(owner))
    assert response.status_code == 200
    assert response.json() == {
        "build_id": doomed["build_id"],
        "deleted": True,
        "message": f"Build {doomed['build_id']} deleted",
    }
    assert (
        await sql.fetchval("SELECT count(*) FROM builds WHERE build_id = $1", doomed["build_id"])
        == 0
    )
    votes = await sql.fetch("SELECT build_id, rating FROM build_votes")
    assert [tuple(v) for v in votes] == [(kept["build_id"], 2)]
    again = await client.delete(f"{API}/builds/{doomed['build_id']}", headers=headers(owner))
    assert again.status_code == 404
    assert again.json() == not_found(doomed["build_id"])
    gone = await client.get(f"{API}/builds/{doomed['build_id']}", headers=headers(owner))
    assert gone.status_code == 404


async def test_owner_deletes_private_build(client: httpx.AsyncClient, sql) -> None:
    owner = new_session()
    build = await create_build(client, owner, is_public=False)
    response = await client.delete(f"{API}/builds/{build['build_id']}", headers=headers(owner))
    assert response.status_code == 200
    assert await sql.fetchval("SELECT count(*) FROM builds") == 0


async def test_delete_by_non_owner_is_403(client: httpx.AsyncClient, sql) -> None:
    build = await create_build(client, new_session())
    await add_votes(sql, build["build_id"], [5])
    response = await client.delete(
        f"{API}/builds/{build['build_id']}", headers=headers(new_session())
    )
    assert response.status_code == 403
    assert response.json() == error(
        "not_owner", f"Build {build['build_id']} belongs to another session", 403
    )
    assert await sql.fetchval("SELECT count(*) FROM builds") == 1
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 1


async def test_delete_of_another_sessions_private_build_is_404(
    client: httpx.AsyncClient, sql
) -> None:
    build = await create_build(client, new_session(), is_public=False)
    response = await client.delete(
        f"{API}/builds/{build['build_id']}", headers=headers(new_session())
    )
    assert response.status_code == 404
    assert response.json() == not_found(build["build_id"])
    assert await sql.fetchval("SELECT count(*) FROM builds") == 1
