"""Shared by the admin tests: tokens of a test provider, feedback seeded through the API."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.auth_keys import Key, bearer, claims, provider_settings
from tests.factories import API, headers, new_session

KEY = Key.new("admin-1", "EdDSA")
ADMIN_TOKEN = KEY.sign(claims("steam:1", "Root", ["admin"]))
PLAYER_TOKEN = KEY.sign(claims("steam:2", "Pat", ["moderator"]))
EXPIRED_TOKEN = KEY.sign(
    claims("steam:1", "Root", ["admin"], exp=int(time.time()) - 3600, iat=0, nbf=0)
)
ADMIN = bearer(ADMIN_TOKEN)
PLAYER = bearer(PLAYER_TOKEN)
SETTINGS = provider_settings(auth_public_key=KEY.public_pem())


def feedback_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": "best tank build",
        "response_snippet": "Try a Paladin.",
        "search_mode": "smart",
        "rating": "up",
    }
    body.update(fields)
    return body


async def send_feedback(
    client: httpx.AsyncClient, session: str | None = None, **fields: Any
) -> dict[str, Any]:
    """POST /feedback (201); returns the body."""
    response = await client.post(
        f"{API}/feedback",
        json=feedback_body(**fields),
        headers=headers(session or new_session()),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
