"""POST /builds: trimming, lengths, game data (the 64-class matrix), defaults, owner, ids."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from service.contract import ids
from tests.factories import (
    API,
    BUILD_ID_RE,
    TIMESTAMP_RE,
    build_body,
    create_build,
    headers,
    new_session,
    validation,
)

# The contract's class table, copied verbatim: rows = primary, columns = secondary.
CONTRACT_MATRIX = """
| primary \\ secondary | fighter | tank | rogue | ranger | mage | summoner | cleric | bard |
| fighter | Weapon Master | Dreadnought | Shadowblade | Hunter | Spellsword | Bladecaller | Highsword | Bladedancer |
| tank | Knight | Guardian | Nightshield | Warden | Spellshield | Keeper | Paladin | Argent |
| rogue | Duelist | Shadow Guardian | Assassin | Predator | Nightspell | Shadow Lord | Cultist | Charlatan |
| ranger | Strider | Sentinel | Scout | Hawkeye | Scion | Falconer | Soulbow | Bowsinger |
| mage | Battle Mage | Spellstone | Shadow Caster | Spell Hunter | Archwizard | Warlock | Acolyte | Sorcerer |
| summoner | Wild Blade | Brood Warden | Shadowmancer | Beast Master | Spellmancer | Conjurer | Necromancer | Enchanter |
| cleric | Templar | Apostle | Shadow Disciple | Protector | Oracle | Shaman | High Priest | Scryer |
| bard | Tellsword | Siren | Trickster | Song Warden | Magician | Song Caller | Soul Weaver | Minstrel |
"""  # noqa: E501
RACES = ("kaelar", "vaelune", "dunir", "nikua", "empyrean", "pyrai", "renkai", "vek", "tulnar")


def contract_classes() -> dict[tuple[str, str], str]:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in CONTRACT_MATRIX.strip().splitlines()
    ]
    secondaries = rows[0][1:]
    return {
        (row[0], sec): name
        for row in rows[1:]
        for sec, name in zip(secondaries, row[1:], strict=True)
    }


async def test_create_returns_the_build_and_stores_the_row(client: httpx.AsyncClient, sql) -> None:
    session = new_session()
    response = await client.post(
        f"{API}/builds",
        json=build_body(name="  Holy Wall  ", description="Front line.", race="Kaelar"),
        headers=headers(session),
    )
    assert response.status_code == 201
    assert response.headers["X-Session-ID"] == session
    body = response.json()
    build_id = body["build_id"]
    assert BUILD_ID_RE.match(build_id)
    assert TIMESTAMP_RE.match(body["created_at"])
    assert body == {
        "build_id": build_id,
        "name": "Holy Wall",
        "description": "Front line.",
        "primary_archetype": "tank",
        "secondary_archetype": "cleric",
        "class_name": "Paladin",
        "race": "kaelar",
        "is_public": True,
        "is_template": False,
        "share_url": f"https://myashes.ai/?build={build_id}",
        "created_at": body["created_at"],
        "updated_at": body["created_at"],
        "rating": None,
        "vote_count": 0,
        "created_by": "anonymous",
        "creator": {"display_name": "anonymous", "is_authenticated": False},
    }
    row = await sql.fetchrow("SELECT * FROM builds WHERE build_id = $1", build_id)
    assert row is not None
    assert {
        k: row[k]
        for k in (
            "name",
            "description",
            "primary_archetype",
            "secondary_archetype",
            "class_name",
            "race",
            "is_public",
            "is_template",
            "owner_session",
            "rating_sum",
            "vote_count",
        )
    } == {
        "name": "Holy Wall",
        "description": "Front line.",
        "primary_archetype": "tank",
        "secondary_archetype": "cleric",
        "class_name": "Paladin",
        "race": "kaelar",
        "is_public": True,
        "is_template": False,
        "owner_session": session,
        "rating_sum": 0,
        "vote_count": 0,
    }
    created = datetime.fromisoformat(body["created_at"])
    assert abs(row["created_at"] - created) < timedelta(milliseconds=1)
    assert row["created_at"].utcoffset() == timedelta(0)


async def test_all_64_classes_follow_the_contract_matrix(client: httpx.AsyncClient, sql) -> None:
    expected = contract_classes()
    assert len(expected) == 64
    session = new_session()
    for (primary, secondary), class_name in expected.items():
        # Mixed-case input: stored and returned as lowercase keys.
        build = await create_build(
            client,
            session,
            name=f"{primary}/{secondary}",
            primary_archetype=primary.upper(),
            secondary_archetype=secondary.title(),
        )
        assert (build["primary_archetype"], build["secondary_archetype"]) == (primary, secondary)
        assert build["class_name"] == class_name, (primary, secondary)
    rows = await sql.fetch("SELECT primary_archetype, secondary_archetype, class_name FROM builds")
    assert {(r[0], r[1]): r[2] for r in rows} == expected


@pytest.mark.parametrize("race", RACES)
async def test_every_race_is_accepted_case_insensitively(
    client: httpx.AsyncClient, sql, race: str
) -> None:
    build = await create_build(client, new_session(), race=race.upper())
    assert build["race"] == race
    assert await sql.fetchval("SELECT race FROM builds") == race


async def test_name_is_trimmed_and_limited_to_100(client: httpx.AsyncClient) -> None:
    session = new_session()
    build = await create_build(client, session, name="  " + "n" * 100 + "\t\n")
    assert build["name"] == "n" * 100
    response = await client.post(f"{API}/builds", json=build_body(name="n" * 101))
    assert response.status_code == 422
    assert response.json() == validation("name", "must be 1-100 characters after trimming")


@pytest.mark.parametrize("name", ["", "   ", "\t\n ", "\u3000"])
async def test_blank_name_is_rejected(client: httpx.AsyncClient, sql, name: str) -> None:
    response = await client.post(f"{API}/builds", json=build_body(name=name))
    assert response.status_code == 422
    assert response.json() == validation("name", "must be 1-100 characters after trimming")
    assert await sql.fetchval("SELECT count(*) FROM builds") == 0


async def test_description_limit_is_2000(client: httpx.AsyncClient, sql) -> None:
    build = await create_build(client, new_session(), description="d" * 2000)
    assert build["description"] == "d" * 2000
    stored = await sql.fetchval(
        "SELECT description FROM builds WHERE build_id = $1", build["build_id"]
    )
    assert stored == "d" * 2000
    response = await client.post(f"{API}/builds", json=build_body(description="d" * 2001))
    assert response.status_code == 422
    assert response.json() == validation("description", "Expected `str` of length <= 2000")


@pytest.mark.parametrize(("sent", "stored"), [(None, None), ("   ", None), (" text ", "text")])
async def test_description_optional(
    client: httpx.AsyncClient, sql, sent: str | None, stored: str | None
) -> None:
    build = await create_build(client, new_session(), description=sent)
    assert build["description"] == stored
    assert await sql.fetchval("SELECT description FROM builds") == stored


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("primary_archetype", "wizard"),
        ("secondary_archetype", "healer"),
        ("race", "human"),
        ("race", "Py'rai"),
        ("primary_archetype", ""),
    ],
)
async def test_unknown_game_data_is_rejected(
    client: httpx.AsyncClient, sql, field: str, value: str
) -> None:
    response = await client.post(f"{API}/builds", json=build_body(**{field: value}))
    assert response.status_code == 422
    assert response.json() == validation(field, f"unknown value {value!r}")
    assert await sql.fetchval("SELECT count(*) FROM builds") == 0


@pytest.mark.parametrize("field", ["name", "primary_archetype", "secondary_archetype", "race"])
async def test_required_fields(client: httpx.AsyncClient, field: str) -> None:
    body = build_body()
    del body[field]
    response = await client.post(f"{API}/builds", json=body)
    assert response.status_code == 422
    assert response.json() == validation(field, f"Object missing required field `{field}`")


@pytest.mark.parametrize("field", ["name", "primary_archetype", "race"])
async def test_null_required_field(client: httpx.AsyncClient, field: str) -> None:
    response = await client.post(f"{API}/builds", json=build_body(**{field: None}))
    assert response.status_code == 422
    assert response.json() == validation(field, "Expected `str`, got `null`")


async def test_is_public_defaults_true_and_can_be_false(client: httpx.AsyncClient, sql) -> None:
    public = await create_build(client, new_session())
    private = await create_build(client, new_session(), is_public=False)
    assert public["is_public"] is True
    assert private["is_public"] is False
    rows = dict(await sql.fetch("SELECT build_id, is_public FROM builds"))
    assert rows == {public["build_id"]: True, private["build_id"]: False}


async def test_client_cannot_set_server_fields(client: httpx.AsyncClient, sql) -> None:
    """Fields the server owns are ignored on create: no self-made templates or fake tallies."""
    session = new_session()
    build = await create_build(
        client,
        session,
        is_template=True,
        class_name="Archwizard",
        owner_session="sess_" + "0" * 24,
        vote_count=99,
        rating=5,
        created_by="MyAshes Official",
        creator={"display_name": "Alice", "is_authenticated": True},
        owner_player="steam:1",
        build_id="b_00000000",
    )
    assert build["build_id"] != "b_00000000"
    assert (build["is_template"], build["class_name"], build["vote_count"]) == (False, "Paladin", 0)
    assert build["created_by"] == "anonymous"
    assert build["creator"] == {"display_name": "anonymous", "is_authenticated": False}
    row = await sql.fetchrow(
        "SELECT owner_session, owner_player, creator_name, is_template, vote_count FROM builds"
    )
    assert tuple(row) == (session, None, None, False, 0)


@pytest.mark.parametrize(
    "settings_overrides", [{"website_url": "https://beta.myashes.ai/"}], indirect=True
)
async def test_share_url_uses_website_url(client: httpx.AsyncClient) -> None:
    build = await create_build(client, new_session())
    assert build["share_url"] == f"https://beta.myashes.ai/?build={build['build_id']}"


async def test_clashing_id_is_regenerated(
    client: httpx.AsyncClient, sql, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await create_build(client, new_session())
    issued = iter([first["build_id"], first["build_id"], "b_0000beef"])
    monkeypatch.setattr(ids, "new_id", lambda prefix: next(issued))
    response = await client.post(f"{API}/builds", json=build_body(name="second"))
    assert response.status_code == 201
    assert response.json()["build_id"] == "b_0000beef"
    rows = dict(await sql.fetch("SELECT build_id, name FROM builds"))
    assert rows == {first["build_id"]: "Tank build", "b_0000beef": "second"}
