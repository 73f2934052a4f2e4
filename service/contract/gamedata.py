"""Ashes of Creation game data from the contract: archetypes, races, the 64-class matrix."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

ARCHETYPES = ("fighter", "tank", "rogue", "ranger", "mage", "summoner", "cleric", "bard")

RACES: dict[str, str] = {
    "kaelar": "Kaelar",
    "vaelune": "Vaelune",
    "dunir": "Dunir",
    "nikua": "Nikua",
    "empyrean": "Empyrean",
    "pyrai": "Py'rai",
    "renkai": "Ren'kai",
    "vek": "Vek",
    "tulnar": "Tulnar",
}

RACE_PARENTS: dict[str, tuple[str, ...]] = {
    "Aela Humans": ("kaelar", "vaelune"),
    "Dünzenkell Dwarves": ("dunir", "nikua"),
    "Pyrian Elves": ("empyrean", "pyrai"),
    "Kaivek Orcs": ("renkai", "vek"),
    "Tulnar": ("tulnar",),
}

SEARCH_MODES = ("quick", "smart", "deep")
FEEDBACK_RATINGS = ("up", "down")

_MATRIX_ROWS = {
    "fighter": (
        "Weapon Master",
        "Dreadnought",
        "Shadowblade",
        "Hunter",
        "Spellsword",
        "Bladecaller",
        "Highsword",
        "Bladedancer",
    ),
    "tank": (
        "Knight",
        "Guardian",
        "Nightshield",
        "Warden",
        "Spellshield",
        "Keeper",
        "Paladin",
        "Argent",
    ),
    "rogue": (
        "Duelist",
        "Shadow Guardian",
        "Assassin",
        "Predator",
        "Nightspell",
        "Shadow Lord",
        "Cultist",
        "Charlatan",
    ),
    "ranger": (
        "Strider",
        "Sentinel",
        "Scout",
        "Hawkeye",
        "Scion",
        "Falconer",
        "Soulbow",
        "Bowsinger",
    ),
    "mage": (
        "Battle Mage",
        "Spellstone",
        "Shadow Caster",
        "Spell Hunter",
        "Archwizard",
        "Warlock",
        "Acolyte",
        "Sorcerer",
    ),
    "summoner": (
        "Wild Blade",
        "Brood Warden",
        "Shadowmancer",
        "Beast Master",
        "Spellmancer",
        "Conjurer",
        "Necromancer",
        "Enchanter",
    ),
    "cleric": (
        "Templar",
        "Apostle",
        "Shadow Disciple",
        "Protector",
        "Oracle",
        "Shaman",
        "High Priest",
        "Scryer",
    ),
    "bard": (
        "Tellsword",
        "Siren",
        "Trickster",
        "Song Warden",
        "Magician",
        "Song Caller",
        "Soul Weaver",
        "Minstrel",
    ),
}

CLASS_MATRIX: dict[tuple[str, str], str] = {
    (primary, secondary): name
    for primary, row in _MATRIX_ROWS.items()
    for secondary, name in zip(ARCHETYPES, row, strict=True)
}
CLASS_NAMES: tuple[str, ...] = tuple(dict.fromkeys(CLASS_MATRIX.values()))


def class_for(primary: str, secondary: str) -> str:
    """Display name of the class for two archetype keys (both already validated)."""
    return CLASS_MATRIX[(primary, secondary)]


def _squash(text: str) -> str:
    # Public guides write "Spellhunter" for "Spell Hunter": compare without spaces.
    return "".join(text.casefold().split())


def classes_matching(fragment: str) -> list[str]:
    """Class names containing `fragment`, case-insensitive, spaces optional; sorted."""
    plain, squashed = fragment.casefold(), _squash(fragment)
    return sorted(
        name
        for name in CLASS_NAMES
        if plain in name.casefold() or (squashed and squashed in _squash(name))
    )


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    primary: str
    secondary: str
    race: str

    @property
    def build_id(self) -> str:
        # Stable id so seeding is idempotent across machines.
        return "b_" + hashlib.sha256(f"template:{self.name}".encode()).hexdigest()[:8]

    @property
    def class_name(self) -> str:
        return class_for(self.primary, self.secondary)


TEMPLATES: tuple[Template, ...] = (
    Template(
        "Classic Tank - Paladin",
        "Heavy armour frontliner with self-heals and group "
        "protection; holds aggro in dungeons and sieges.",
        "tank",
        "cleric",
        "kaelar",
    ),
    Template(
        "Unbreakable Guardian",
        "Pure tank: maximum mitigation, taunts and crowd control for raid encounters.",
        "tank",
        "tank",
        "dunir",
    ),
    Template(
        "Weapon Master Bruiser",
        "Melee damage with sustained pressure and strong gap closers.",
        "fighter",
        "fighter",
        "renkai",
    ),
    Template(
        "Shadowblade Skirmisher",
        "Fighter with rogue stealth tricks for ambushes and open-world PvP.",
        "fighter",
        "rogue",
        "vek",
    ),
    Template(
        "Assassin Striker",
        "Burst single-target damage from stealth; picks off healers.",
        "rogue",
        "rogue",
        "pyrai",
    ),
    Template(
        "Hawkeye Sniper",
        "Long-range physical damage and target marking.",
        "ranger",
        "ranger",
        "empyrean",
    ),
    Template(
        "Archwizard Nuker", "Area spell damage and battlefield control.", "mage", "mage", "vaelune"
    ),
    Template(
        "Warlock Drainer",
        "Mage with summoner curses and life drain for sustained fights.",
        "mage",
        "summoner",
        "tulnar",
    ),
    Template(
        "Necromancer Swarm",
        "Summoner with cleric magic: undead minions and debuffs.",
        "summoner",
        "cleric",
        "nikua",
    ),
    Template(
        "High Priest Healer",
        "Main healer: big heals, cleanses and resurrection.",
        "cleric",
        "cleric",
        "kaelar",
    ),
    Template(
        "Oracle Support",
        "Cleric with mage utility: shields, foresight and ranged support.",
        "cleric",
        "mage",
        "empyrean",
    ),
    Template(
        "Minstrel Buffer",
        "Group buffs, speed and morale songs for any party.",
        "bard",
        "bard",
        "vaelune",
    ),
)
OFFICIAL_AUTHOR = "MyAshes Official"
ANONYMOUS_AUTHOR = "anonymous"
