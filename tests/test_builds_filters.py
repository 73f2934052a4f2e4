"""GET /builds filters: class_name (alternative spellings), archetypes, race, search, template."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.builds.store import seed_templates
from tests.factories import create_build, list_builds, new_session


async def names(client: httpx.AsyncClient, **params: Any) -> list[str]:
    body = await list_builds(client, limit=100, **params)
    assert body["total"] == len(body["builds"])
    return [b["name"] for b in body["builds"]]


@pytest.fixture
async def roster(client: httpx.AsyncClient) -> None:
    """Public builds across classes, races and text; one private build that matches all."""
    session = new_session()
    for name, primary, secondary, race, description in [
        ("Holy wall", "tank", "cleric", "kaelar", None),  # Paladin
        ("Sniper", "mage", "ranger", "pyrai", "Long range spell hunter"),  # Spell Hunter
        ("Pet army", "summoner", "ranger", "vek", None),  # Beast Master
        ("Song of the pack", "bard", "summoner", "tulnar", "group buffs"),  # Song Caller
        ("Shadow tank", "rogue", "tank", "renkai", None),  # Shadow Guardian
        ("Night bulwark", "tank", "rogue", "dunir", "100% uptime"),  # Nightshield
        ("under_score", "cleric", "cleric", "nikua", None),  # High Priest
        ("Warden", "tank", "ranger", "kaelar", "PALADIN alternative"),  # Warden
    ]:
        await create_build(
            client,
            session,
            name=name,
            primary_archetype=primary,
            secondary_archetype=secondary,
            race=race,
            description=description,
        )
    await create_build(
        client,
        session,
        name="Hidden paladin",
        description="100% under_score shadow",
        is_public=False,
    )


@pytest.mark.usefixtures("roster")
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Paladin", {"Holy wall"}),
        ("pALAd", {"Holy wall"}),
        ("shadow", {"Shadow tank"}),
        ("Spell Hunter", {"Sniper"}),
        ("Spellhunter", {"Sniper"}),
        ("spellhunter", {"Sniper"}),
        ("Beastmaster", {"Pet army"}),
        ("Beast Master", {"Pet army"}),
        ("Songcaller", {"Song of the pack"}),
        ("song caller", {"Song of the pack"}),
        ("warden", {"Warden"}),
        ("guard", {"Shadow tank"}),
        ("Necromancer", set()),
        ("zzz", set()),
        ("   ", set()),
    ],
)
async def test_class_name_filter(client: httpx.AsyncClient, value: str, expected: set) -> None:
    assert set(await names(client, class_name=value)) == expected


@pytest.mark.usefixtures("roster")
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"primary_archetype": "tank"}, {"Holy wall", "Night bulwark", "Warden"}),
        ({"primary_archetype": "TANK"}, {"Holy wall", "Night bulwark", "Warden"}),
        ({"secondary_archetype": "Ranger"}, {"Sniper", "Pet army", "Warden"}),
        ({"race": "KAELAR"}, {"Holy wall", "Warden"}),
        ({"race": "pyrai"}, {"Sniper"}),
        ({"race": "empyrean"}, set()),
        ({"primary_archetype": "tank", "secondary_archetype": "ranger"}, {"Warden"}),
        ({"primary_archetype": "tank", "race": "dunir"}, {"Night bulwark"}),
        ({"primary_archetype": "tank", "race": "vek"}, set()),
        ({"class_name": "paladin", "race": "kaelar"}, {"Holy wall"}),
        ({"class_name": "warden", "search": "paladin"}, {"Warden"}),
    ],
)
async def test_exact_filters_are_anded(
    client: httpx.AsyncClient, params: dict, expected: set
) -> None:
    assert set(await names(client, **params)) == expected


@pytest.mark.usefixtures("roster")
@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("wall", {"Holy wall"}),  # name
        ("WALL", {"Holy wall"}),
        ("range", {"Sniper"}),  # description
        ("paladin", {"Holy wall", "Warden"}),  # class_name and description
        ("Spell Hunter", {"Sniper"}),  # class_name (and description)
        ("guardian", {"Shadow tank"}),  # class_name only
        ("tank", {"Shadow tank"}),
        ("100%", {"Night bulwark"}),  # % is a literal character, not a wildcard
        ("%%%abc%", set()),
        ("00% u", {"Night bulwark"}),
        ("er_sc", {"under_score"}),  # _ is a literal character too
        ("_und_", set()),
        ("der_", {"under_score"}),
        ("\\%abc", set()),
        ("nope", set()),
        ("a.b.c", set()),  # 3 letters with punctuation between: accepted, nothing matches
    ],
)
async def test_search(client: httpx.AsyncClient, search: str, expected: set) -> None:
    assert set(await names(client, search=search)) == expected


async def test_is_template_filter(client: httpx.AsyncClient) -> None:
    await seed_templates()
    session = new_session()
    await create_build(client, session, name="mine")
    templates = await list_builds(client, is_template="true", limit=100)
    assert templates["total"] == 12
    assert {b["is_template"] for b in templates["builds"]} == {True}
    assert {b["created_by"] for b in templates["builds"]} == {"MyAshes Official"}
    community = await list_builds(client, is_template="false")
    assert [(b["name"], b["is_template"], b["created_by"]) for b in community["builds"]] == [
        ("mine", False, "anonymous")
    ]
    assert (await list_builds(client))["total"] == 13
