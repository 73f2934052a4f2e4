"""Feedback writes: the insert with its daily rollups (one transaction), and the admin review.

Rollups (models.feedback): per (UTC day, mode, normalised query, rating) with distinct
sessions, all-time per normalised query, and per (UTC day, mode, rating) for the trend.
Statement order is fixed (feedback row, session row, query rollup, query total, daily rollup)
and each transaction touches one row of each, so concurrent inserts cannot deadlock: the
later one waits on the first lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise import connections

from aggregators.normalise import normalise_query
from service.contract import ids

# The rollup key (same formula as migration 4's backfill): epoch day, query, mode, rating.
KEY_SQL = (
    "hashtextextended(($1::date - DATE '1970-01-01')::text || E'\\x1f' || $2::text"
    " || E'\\x1f' || $3::text || E'\\x1f' || $4::text, 0)"
)

_INSERT_SQL = """
INSERT INTO feedback (feedback_id, query, query_norm, response_snippet, search_mode, rating,
                      comment, session_id, received_at, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'new')
ON CONFLICT (feedback_id) DO NOTHING
RETURNING feedback_id
"""

_ROLLUP_SQL = f"""
WITH new_session AS (
    INSERT INTO feedback_rollup_sessions (key_hash, session_hash)
    VALUES ({KEY_SQL}, hashtextextended($5, 0))
    ON CONFLICT (key_hash, session_hash) DO NOTHING
    RETURNING key_hash
)
INSERT INTO feedback_rollups AS r (key_hash, day, query_norm, search_mode, rating, count,
                                   sessions, last_at)
VALUES ({KEY_SQL}, $1, $2, $3, $4, 1, (SELECT count(*) FROM new_session), $6)
ON CONFLICT (key_hash) DO UPDATE
    SET count = r.count + 1, sessions = r.sessions + excluded.sessions,
        last_at = greatest(r.last_at, excluded.last_at)
"""  # noqa: S608 - KEY_SQL is constant text

_QUERY_SQL = """
INSERT INTO feedback_queries AS q (query_norm, down, up, last_at)
VALUES ($1, ($2 = 'down')::int, ($2 = 'up')::int, $3)
ON CONFLICT (query_norm) DO UPDATE
    SET down = q.down + excluded.down, up = q.up + excluded.up,
        last_at = greatest(q.last_at, excluded.last_at)
"""

_DAILY_SQL = """
INSERT INTO feedback_daily AS d (day, search_mode, rating, count) VALUES ($1, $2, $3, 1)
ON CONFLICT (day, search_mode, rating) DO UPDATE SET count = d.count + 1
"""


@dataclass(frozen=True, slots=True)
class NewFeedback:
    query: str
    response_snippet: str
    search_mode: str
    rating: str
    comment: str | None
    session_id: str


async def record(item: NewFeedback) -> tuple[str, datetime]:
    """Insert one feedback row and count it in both rollups, atomically; (id, received_at)."""
    received_at = datetime.now(UTC)
    day = received_at.date()
    query_norm = normalise_query(item.query)
    db: Any = connections.get("default")
    async with db.acquire_connection() as conn, conn.transaction():
        for _ in range(ids.ATTEMPTS):
            feedback_id = ids.new_id("f")
            inserted = await conn.fetchval(
                _INSERT_SQL,
                feedback_id,
                item.query,
                query_norm,
                item.response_snippet,
                item.search_mode,
                item.rating,
                item.comment,
                item.session_id,
                received_at,
            )
            if inserted is not None:
                break
        else:
            raise RuntimeError(f"no free feedback id after {ids.ATTEMPTS} attempts")
        await conn.execute(
            _ROLLUP_SQL,
            day,
            query_norm,
            item.search_mode,
            item.rating,
            item.session_id,
            received_at,
        )
        await conn.execute(_QUERY_SQL, query_norm, item.rating, received_at)
        await conn.execute(_DAILY_SQL, day, item.search_mode, item.rating)
    return feedback_id, received_at
