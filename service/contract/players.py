"""Player: who a verified bearer token says is calling (id, display name, roles)."""

from __future__ import annotations

from dataclasses import dataclass

ADMIN_ROLE = "admin"
PLAYER_ID_MAX = 128  # builds.owner_player / build_votes.player_id column width
DISPLAY_NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class Player:
    """A logged-in player. `id` (the token's `sub`, e.g. steam:7656...) is never shown in a
    response; `display_name` is."""

    id: str
    display_name: str
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles
