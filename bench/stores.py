"""Stores for the benchmark: embedded (default) or the given URLs; seeded builds."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from service.contract.gamedata import ARCHETYPES, RACES, class_for
from service.runtime import db

ROOT = Path(__file__).resolve().parent.parent
TABLES = (
    "builds, build_votes, feedback, search_events, search_rollups, search_rollup_sessions, "
    "flush_log"
)
SEED_BUILDS = 2000


@contextmanager
def prepared(ids_file: Path) -> Iterator[tuple[str, str]]:
    """(database_url, valkey_url), migrated; embedded servers live for the block."""
    database_url = os.environ.get("DATABASE_URL")
    valkey_url = os.environ.get("VALKEY_URL")
    servers = None
    if not database_url or not valkey_url:
        from service.runtime import embedded

        servers = embedded.start(ROOT / ".data", database="myashes_bench")
        database_url, valkey_url = servers.database_url, servers.valkey_url
    try:
        import asyncio

        asyncio.run(db.migrate(database_url))
        yield database_url, valkey_url
    finally:
        if servers is not None:
            servers.stop()


async def seed_builds(
    database_url: str, valkey_url: str | None, *, count: int = SEED_BUILDS, label: str = "Bench"
) -> list[str]:
    """Empty the service's tables (and Valkey's db), seed `count` public builds; their ids."""
    rng = random.Random(42)
    rows = []
    for i in range(count):
        primary, secondary = rng.choice(ARCHETYPES), rng.choice(ARCHETYPES)
        rows.append(
            (
                f"b_{i:08x}",
                f"{label} build {i}",
                f"seeded by the {label.lower()} harness",
                primary,
                secondary,
                class_for(primary, secondary),
                rng.choice(list(RACES)),
            )
        )
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        await conn.executemany(
            "INSERT INTO builds (build_id, name, description, primary_archetype, "
            "secondary_archetype, class_name, race, is_public, is_template, rating_sum, "
            "vote_count, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, true, false, 0, 0, now(), now())",
            rows,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    if valkey_url:
        client = Redis.from_url(valkey_url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()
    return [r[0] for r in rows]


async def reset(database_url: str, ids_file: Path, valkey_url: str | None = None) -> None:
    """Seed the benchmark's builds; their ids go to ids_file (read by the wrk scripts)."""
    ids = await seed_builds(database_url, valkey_url)
    ids_file.write_text("\n".join(ids) + "\n")


async def vacuum(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


# The hot-build scenario (issue 13): one public build with HOT_VOTES votes inserted directly,
# then wrk votes on it with fresh sessions, next to a build with none.
HOT_BUILD = "b_f0000000"
HOT_VOTES = int(os.environ.get("BENCH_HOT_VOTES", "1000000"))
_BUILD_SQL = (
    "INSERT INTO builds (build_id, name, description, primary_archetype, secondary_archetype, "
    "class_name, race, is_public, is_template, rating_sum, vote_count, created_at, updated_at) "
    "VALUES ($1, $2, 'seeded by the bench harness', 'tank', 'cleric', $3, 'kaelar', true, "
    "false, 0, 0, now(), now())"
)


async def new_build(database_url: str, build_id: str, name: str) -> str:
    """A public build with no votes."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(_BUILD_SQL, build_id, name, class_for("tank", "cleric"))
    finally:
        await conn.close()
    return build_id


async def seed_hot_build(database_url: str, votes: int = HOT_VOTES) -> int:
    """HOT_BUILD with `votes` votes (generate_series, sessions wrk never sends) and its exact
    tallies; returns its vote_count."""
    await new_build(database_url, HOT_BUILD, "Bench hot build")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO build_votes (build_id, session_id, rating, created_at) "
            "SELECT $1, 'sess_' || lpad(to_hex(g), 24, '0'), 1 + g % 5, now() "
            "FROM generate_series(1::bigint << 44, (1::bigint << 44) + $2 - 1) g",
            HOT_BUILD,
            votes,
        )
        count: int = await conn.fetchval(
            "UPDATE builds SET rating_sum = t.s, vote_count = t.n FROM (SELECT sum(rating)::int "
            "AS s, count(*)::int AS n FROM build_votes WHERE build_id = $1) t "
            "WHERE build_id = $1 RETURNING vote_count",
            HOT_BUILD,
        )
        await conn.execute("VACUUM ANALYZE build_votes")
    finally:
        await conn.close()
    return count


async def vote_count(database_url: str, build_id: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT vote_count FROM builds WHERE build_id = $1", build_id
        )
    finally:
        await conn.close()
    return count
