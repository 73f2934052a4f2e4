"""The schema the aerich migrations build: tables, unique vote per session, CHECKs, cascade."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from tests.conftest import TABLES, Stores, clean_stores


@pytest.fixture(autouse=True)
async def clean(stores: Stores) -> None:
    """Empty tables; the schema itself was built by the migrations (session fixture)."""
    await clean_stores(stores)


NOW = datetime.now(UTC)
SESSION = "sess_" + "a" * 24


async def insert_build(sql: asyncpg.Connection, build_id: str = "b_00000001") -> None:
    await sql.execute(
        """
        INSERT INTO builds (build_id, name, primary_archetype, secondary_archetype, class_name,
                            race, is_public, is_template, rating_sum, vote_count, created_at,
                            updated_at)
        VALUES ($1, 'n', 'tank', 'cleric', 'Paladin', 'kaelar', true, false, 0, 0, $2, $2)
        """,
        build_id,
        NOW,
    )


async def insert_vote(
    sql: asyncpg.Connection, rating: int, session: str = SESSION, build_id: str = "b_00000001"
) -> None:
    await sql.execute(
        "INSERT INTO build_votes (build_id, session_id, rating, created_at)"
        " VALUES ($1, $2, $3, $4)",
        build_id,
        session,
        rating,
        NOW,
    )


async def test_tables_exist(sql: asyncpg.Connection) -> None:
    rows = await sql.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    tables = {r[0] for r in rows}
    assert {"builds", "build_votes", "feedback", "aerich", *TABLES} <= tables
    applied = await sql.fetchval("SELECT count(*) FROM aerich WHERE app = 'models'")
    assert applied >= 1


async def test_builds_columns(sql: asyncpg.Connection) -> None:
    rows = await sql.fetch(
        """
        SELECT column_name, data_type, is_nullable, character_maximum_length
        FROM information_schema.columns WHERE table_name = 'builds'
        """
    )
    columns = {r[0]: (r[1], r[2], r[3]) for r in rows}
    assert columns["build_id"] == ("character varying", "NO", 10)
    assert columns["name"] == ("character varying", "NO", 100)
    assert columns["description"] == ("character varying", "YES", 2000)
    assert columns["owner_session"] == ("character varying", "YES", 29)
    assert columns["created_at"][0] == "timestamp with time zone"
    assert columns["updated_at"][0] == "timestamp with time zone"


async def test_one_vote_per_session_per_build(sql: asyncpg.Connection) -> None:
    await insert_build(sql)
    await insert_build(sql, "b_00000002")
    await insert_vote(sql, 5)
    await insert_vote(sql, 4, session="sess_" + "b" * 24)
    await insert_vote(sql, 3, build_id="b_00000002")
    with pytest.raises(asyncpg.UniqueViolationError):
        await insert_vote(sql, 2)
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 3


@pytest.mark.parametrize("rating", [0, 6, -1])
async def test_rating_check_rejects_out_of_range(sql: asyncpg.Connection, rating: int) -> None:
    await insert_build(sql)
    with pytest.raises(asyncpg.CheckViolationError):
        await insert_vote(sql, rating)
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0


async def test_rating_check_accepts_1_to_5(sql: asyncpg.Connection) -> None:
    await insert_build(sql)
    for rating in range(1, 6):
        await insert_vote(sql, rating, session=f"sess_{rating:024x}")
    assert await sql.fetchval("SELECT sum(rating) FROM build_votes") == 15


async def test_votes_cascade_with_their_build(sql: asyncpg.Connection) -> None:
    await insert_build(sql)
    await insert_build(sql, "b_00000002")
    await insert_vote(sql, 5)
    await insert_vote(sql, 4, build_id="b_00000002")
    await sql.execute("DELETE FROM builds WHERE build_id = 'b_00000001'")
    rows = await sql.fetch("SELECT build_id FROM build_votes")
    assert [r[0] for r in rows] == ["b_00000002"]


async def test_vote_needs_an_existing_build(sql: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await insert_vote(sql, 5, build_id="b_0000dead")


async def test_tallies_cannot_go_negative(sql: asyncpg.Connection) -> None:
    await insert_build(sql)
    with pytest.raises(asyncpg.CheckViolationError):
        await sql.execute("UPDATE builds SET vote_count = -1")


@pytest.mark.parametrize(
    ("column", "value"), [("rating", "UP"), ("rating", "meh"), ("search_mode", "fast")]
)
async def test_feedback_checks(sql: asyncpg.Connection, column: str, value: str) -> None:
    values = {"rating": "up", "search_mode": "quick", column: value}
    with pytest.raises(asyncpg.CheckViolationError):
        await sql.execute(
            """
            INSERT INTO feedback (feedback_id, query, response_snippet, search_mode, rating,
                                  session_id, received_at)
            VALUES ('f_00000001', 'q', 's', $1, $2, $3, $4)
            """,
            values["search_mode"],
            values["rating"],
            SESSION,
            NOW,
        )


async def test_rating_average_column_is_derived(sql: asyncpg.Connection) -> None:
    await insert_build(sql)
    assert await sql.fetchval("SELECT rating_avg FROM builds") == 0
    await sql.execute("UPDATE builds SET rating_sum = 9, vote_count = 2")
    assert await sql.fetchval("SELECT rating_avg FROM builds") == 4.5


async def test_list_sorts_have_indexes(sql: asyncpg.Connection) -> None:
    rows = await sql.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'builds'")
    indexes = {r[0] for r in rows}
    assert {
        "builds_newest_idx",
        "builds_popular_idx",
        "builds_rating_idx",
        "builds_primary_idx",
        "builds_secondary_idx",
        "builds_race_idx",
        "builds_class_idx",
        "builds_template_idx",
    } <= indexes


async def test_issue_17_schema(sql: asyncpg.Connection) -> None:
    """Migration 3: the voter's network with its cap index, networks per search rollup key,
    hidden queries."""
    columns = await sql.fetch(
        "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
        "WHERE (table_name, column_name) IN (('build_votes', 'source_network'), "
        "('search_rollups', 'sources'), ('hidden_queries', 'query_norm'))"
    )
    assert sorted(tuple(r) for r in columns) == [
        ("build_votes", "source_network", "YES"),
        ("hidden_queries", "query_norm", "NO"),
        ("search_rollups", "sources", "NO"),
    ]
    index = await sql.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'build_votes_network_idx'"
    )
    assert "(build_id, source_network, created_at)" in index
    keys = await sql.fetch(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'search_rollup_sources'::regclass "
        "AND i.indisprimary ORDER BY a.attname"
    )
    assert [k[0] for k in keys] == ["key_hash", "source_hash"]
