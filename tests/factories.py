"""Test data through the API (sessions, builds) and straight into Postgres (votes, times)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

API = "/api/v1"
SESSION_RE = re.compile(r"^sess_[0-9a-f]{24}$")
BUILD_ID_RE = re.compile(r"^b_[0-9a-f]{8}$")
# ISO 8601, UTC, with an explicit +00:00 offset (the contract's timestamp format).
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")


def new_session() -> str:
    return "sess_" + secrets.token_hex(12)


def headers(session: str) -> dict[str, str]:
    return {"X-Session-ID": session}


def error(code: str, message: str, status: int, details: list[dict[str, str]] | None = None):
    """The complete contract error body."""
    body: dict[str, Any] = {"error": code, "message": message, "status": status}
    if details is not None:
        body["details"] = details
    return body


def not_found(build_id: str) -> dict[str, Any]:
    return error("build_not_found", f"Build {build_id} not found", 404)


def validation(field: str, problem: str) -> dict[str, Any]:
    """A 422 body with one problem."""
    return error(
        "validation_error", f"{field}: {problem}", 422, [{"field": field, "problem": problem}]
    )


def build_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Tank build",
        "primary_archetype": "tank",
        "secondary_archetype": "cleric",
        "race": "kaelar",
    }
    body.update(fields)
    return body


async def create_build(client: httpx.AsyncClient, session: str, **fields: Any) -> dict[str, Any]:
    """POST a build as `session`; returns the 201 body."""
    response = await client.post(
        f"{API}/builds", json=build_body(**fields), headers=headers(session)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def set_created_at(sql: asyncpg.Connection, build_ids: Sequence[str], at: datetime) -> None:
    await sql.execute(
        "UPDATE builds SET created_at = $1 WHERE build_id = ANY($2::varchar[])", at, list(build_ids)
    )


async def add_votes(
    sql: asyncpg.Connection,
    build_id: str,
    ratings: Sequence[int],
    *,
    at: datetime | None = None,
) -> None:
    """Insert votes from fresh sessions and recompute the build's tallies from build_votes.

    The tallies are what the vote aggregator maintains; recomputing them from the votes
    table keeps builds.rating_sum/vote_count consistent with the rows inserted here.
    """
    at = at or datetime.now(UTC)
    await sql.executemany(
        "INSERT INTO build_votes (build_id, session_id, rating, created_at)"
        " VALUES ($1, $2, $3, $4)",
        [(build_id, new_session(), rating, at) for rating in ratings],
    )
    await sql.execute(
        """
        UPDATE builds b SET rating_sum = v.s, vote_count = v.c
        FROM (SELECT coalesce(sum(rating), 0) AS s, count(*) AS c
              FROM build_votes WHERE build_id = $1) v
        WHERE b.build_id = $1
        """,
        build_id,
    )


# Keys of a build in lists (GET /builds, /builds/popular), as the contract lists them.
ITEM_KEYS = frozenset(
    {
        "build_id",
        "name",
        "description",
        "primary_archetype",
        "secondary_archetype",
        "class_name",
        "race",
        "rating",
        "vote_count",
        "is_template",
        "created_by",
        "creator",
        "created_at",
    }
)


async def list_builds(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    """GET /builds with these query parameters; returns the 200 body."""
    response = await client.get(f"{API}/builds", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
