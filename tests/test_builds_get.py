"""GET /builds/{id}: public for all, private for the owner only (404), templates, bad ids."""

from __future__ import annotations

import httpx
import pytest

from service.builds.store import seed_templates
from service.contract.gamedata import TEMPLATES
from tests.factories import API, add_votes, create_build, headers, new_session, not_found


async def test_public_build_is_visible_to_everyone(client: httpx.AsyncClient) -> None:
    build = await create_build(client, new_session())
    url = f"{API}/builds/{build['build_id']}"
    for extra in ({}, headers(new_session())):
        response = await client.get(url, headers=extra)
        assert response.status_code == 200
        assert response.json() == build


async def test_private_build_only_for_its_owner(client: httpx.AsyncClient) -> None:
    owner = new_session()
    build = await create_build(client, owner, is_public=False)
    url = f"{API}/builds/{build['build_id']}"
    mine = await client.get(url, headers=headers(owner))
    assert mine.status_code == 200
    assert mine.json() == build
    for extra in ({}, headers(new_session()), {"X-Session-ID": owner.upper()}):
        response = await client.get(url, headers=extra)
        assert response.status_code == 404
        assert response.json() == not_found(build["build_id"])


async def test_hidden_and_unknown_builds_look_the_same(client: httpx.AsyncClient) -> None:
    hidden = await create_build(client, new_session(), is_public=False)
    viewer = headers(new_session())
    unknown_id = "b_" + ("0" if hidden["build_id"][2] != "0" else "1") * 8
    hidden_response = await client.get(f"{API}/builds/{hidden['build_id']}", headers=viewer)
    unknown_response = await client.get(f"{API}/builds/{unknown_id}", headers=viewer)
    assert (hidden_response.status_code, unknown_response.status_code) == (404, 404)
    assert hidden_response.json() == not_found(hidden["build_id"])
    assert unknown_response.json() == not_found(unknown_id)
    assert hidden_response.headers.keys() == unknown_response.headers.keys()


async def test_templates_are_visible_to_everyone(client: httpx.AsyncClient) -> None:
    await seed_templates()
    template = TEMPLATES[0]
    response = await client.get(f"{API}/builds/{template.build_id}")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "build_id": template.build_id,
        "name": "Classic Tank - Paladin",
        "description": template.description,
        "primary_archetype": "tank",
        "secondary_archetype": "cleric",
        "class_name": "Paladin",
        "race": "kaelar",
        "is_public": True,
        "is_template": True,
        "share_url": f"https://myashes.ai/?build={template.build_id}",
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
        "rating": None,
        "vote_count": 0,
        "created_by": "MyAshes Official",
        "creator": {"display_name": "MyAshes Official", "is_authenticated": False},
    }


@pytest.mark.parametrize(
    "build_id",
    [
        "xyz",
        "b_ABCDEF12",
        "b_1234567",
        "b_123456789",
        "B_12345678",
        "12345678",
        "b_1234567g",
        "b_%2512345",
        "b_12345678%00",
        "x" * 300,
    ],
)
async def test_malformed_id_is_404(client: httpx.AsyncClient, build_id: str) -> None:
    response = await client.get(f"{API}/builds/{build_id}")
    assert response.status_code == 404
    assert response.json()["error"] == "build_not_found"
    assert response.json()["status"] == 404


@pytest.mark.parametrize(
    ("ratings", "average"),
    [
        ([], None),
        ([5], 5.0),
        ([4, 5], 4.5),
        ([5, 4, 4], 4.3),
        ([5, 4, 4, 4], 4.3),
        ([1, 2], 1.5),
        ([1, 1, 2], 1.3),
    ],
)
async def test_rating_is_the_average_to_one_decimal(
    client: httpx.AsyncClient, sql, ratings: list[int], average: float | None
) -> None:
    build = await create_build(client, new_session())
    if ratings:
        await add_votes(sql, build["build_id"], ratings)
    response = await client.get(f"{API}/builds/{build['build_id']}")
    body = response.json()
    assert (body["rating"], body["vote_count"]) == (average, len(ratings))
    assert body["updated_at"] == build["updated_at"]
