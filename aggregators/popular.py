"""Popular search queries: Valkey top-N sets rebuilt from Postgres rollups (a CachedView).

Ranking: distinct sessions, then count, then query text. Each (days, mode) view is a sorted
set of the top POPULAR_TOP_N keys with score = sessions * 2**32 + count, built into a temp
key and RENAMEd over the live one; the marker member's score is when it was built.

The ranking counts distinct sessions only for the queries with the most searches (sessions
can never exceed searches): if the last of the top N has more sessions than the best query
left out has searches, the answer is exact; otherwise the candidate set grows and it reruns.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from tortoise.backends.base.client import BaseDBAsyncClient

from aggregators import keys
from aggregators.views import CachedView, Snapshot

SCORE_SHIFT = 2**32
SEPARATOR = "\x1f"
FIRST_CANDIDATES = 200


@dataclass(frozen=True, slots=True)
class Ranked:
    query: str
    search_mode: str
    count: int
    sessions: int


_RANKING_SQL = """
WITH keys AS MATERIALIZED (
    SELECT key_hash, query_norm, search_mode, count
    FROM search_rollups
    WHERE hour >= date_trunc('hour', $1::timestamptz)
      AND ($2::text IS NULL OR search_mode = $2)
), counts AS MATERIALIZED (
    SELECT query_norm, search_mode, sum(count)::bigint AS count
    FROM keys GROUP BY query_norm, search_mode
), candidates AS (
    SELECT * FROM counts ORDER BY count DESC, query_norm, search_mode LIMIT $4
), sessions AS (
    SELECT c.query_norm, c.search_mode, count(DISTINCT s.session_hash)::bigint AS sessions
    FROM candidates c
    JOIN keys k USING (query_norm, search_mode)
    JOIN search_rollup_sessions s ON s.key_hash = k.key_hash
    GROUP BY c.query_norm, c.search_mode
)
SELECT c.query_norm, c.search_mode, c.count, coalesce(s.sessions, 0) AS sessions,
       (SELECT count FROM counts ORDER BY count DESC OFFSET $4 LIMIT 1) AS next_count
FROM candidates c LEFT JOIN sessions s USING (query_norm, search_mode)
ORDER BY sessions DESC, c.count DESC, c.query_norm ASC, c.search_mode ASC
LIMIT $3
"""


def _order(row: Ranked) -> tuple[int, int, str, str]:
    return (-row.sessions, -row.count, row.query, row.search_mode)


def _exact(rows: list[Ranked], next_count: int | None) -> bool:
    """True if no query outside the candidates can enter the top N."""
    if next_count is None or len(rows) < keys.POPULAR_TOP_N:
        return True  # every query of the window was a candidate
    return rows[-1].sessions > next_count


class PopularQueries:
    def __init__(
        self,
        db: BaseDBAsyncClient,
        valkey: Redis,
        *,
        fresh_s: float = keys.VIEW_FRESH_S,
        clock: Any = None,
    ) -> None:
        self._db = db
        self._valkey = valkey
        self._now = clock or (lambda: datetime.now(UTC))
        self.view: CachedView[list[Ranked]] = CachedView(
            valkey,
            name="popular-queries",
            load=self._load,
            store=self._store,
            fresh_s=fresh_s,
            refresh_after_s=fresh_s / 2,
        )

    async def top(self, days: int, mode: str | None, limit: int) -> list[Ranked]:
        rows = await self.view.get(
            keys.popular_queries(days, mode), lambda: self.query_postgres(days, mode)
        )
        return rows[:limit]

    async def query_postgres(self, days: int, mode: str | None) -> list[Ranked]:
        since = self._now() - timedelta(days=days)
        candidates = FIRST_CANDIDATES
        while True:
            found = await self._db.execute_query_dict(
                _RANKING_SQL, [since, mode, keys.POPULAR_TOP_N, candidates]
            )
            rows = [
                Ranked(r["query_norm"], r["search_mode"], int(r["count"]), int(r["sessions"]))
                for r in found
            ]
            next_count = found[0]["next_count"] if found else None
            if _exact(rows, next_count):
                return rows
            candidates *= 4

    async def _load(self, key: str) -> Snapshot[list[Ranked]] | None:
        entries: list[Any] = await self._valkey.zrange(key, 0, -1, withscores=True)
        built_at: float | None = None
        rows = []
        for member, score in entries:  # (member, score) pairs: withscores=True
            text = member.decode() if isinstance(member, bytes) else str(member)
            if text == keys.POPULAR_BUILT_MARKER:
                built_at = float(score)
                continue
            search_mode, _, query = text.partition(SEPARATOR)
            sessions, count = divmod(int(score), SCORE_SHIFT)
            rows.append(Ranked(query, search_mode, count, sessions))
        if built_at is None:
            return None
        return Snapshot(sorted(rows, key=_order), built_at)

    async def _store(self, key: str, snapshot: Snapshot[list[Ranked]]) -> None:
        members: dict[str, float] = {keys.POPULAR_BUILT_MARKER: snapshot.built_at}
        for row in snapshot.value:
            members[f"{row.search_mode}{SEPARATOR}{row.query}"] = float(
                min(row.sessions, 2**20) * SCORE_SHIFT + min(row.count, SCORE_SHIFT - 1)
            )
        tmp = keys.temporary(key, secrets.token_hex(4))
        async with self._valkey.pipeline(transaction=True) as pipe:
            pipe.zadd(tmp, members)
            pipe.expire(tmp, keys.VIEW_KEEP_S)
            pipe.rename(tmp, key)
            await pipe.execute()
