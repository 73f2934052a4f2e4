"""Popular search queries: Valkey top-N sets rebuilt from Postgres rollups (a CachedView).

Ranking: distinct source networks (sessions are free to invent, networks are not), then
distinct sessions, then count, then query text. Queries an admin has hidden (hidden_queries)
never appear: the ranking leaves them out, and every read drops those in the hidden set
(Valkey, rebuilt from Postgres on each change), so a copy built before a hide never shows
one. Each (days, mode) view is a sorted set of the top POPULAR_TOP_N keys with member
mode + SEP + count + SEP + query and score = sources * 2**32 + sessions, built into a temp
key and RENAMEd over the live one; the marker member's score is when it was built.

The ranking counts distinct networks and sessions only for the queries with the most
searches (neither can exceed searches): if the last of the top N has more networks than the
best query left out has searches, the answer is exact; otherwise the candidate set grows
and it reruns.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from tortoise.backends.base.client import BaseDBAsyncClient

from aggregators import keys
from aggregators.views import CachedView, Snapshot

log = logging.getLogger("myashes.aggregators.popular")
SCORE_SHIFT = 2**32
SEPARATOR = "\x1f"
FIRST_CANDIDATES = 200


@dataclass(frozen=True, slots=True)
class Ranked:
    query: str
    search_mode: str
    count: int
    sessions: int
    sources: int = 0


_RANKING_SQL = """
WITH keys AS MATERIALIZED (
    SELECT key_hash, query_norm, search_mode, count
    FROM search_rollups
    WHERE hour >= date_trunc('hour', $1::timestamptz)
      AND ($2::text IS NULL OR search_mode = $2)
      AND NOT EXISTS (SELECT 1 FROM hidden_queries h WHERE h.query_norm = search_rollups.query_norm)
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
), sources AS (
    SELECT c.query_norm, c.search_mode, count(DISTINCT n.source_hash)::bigint AS sources
    FROM candidates c
    JOIN keys k USING (query_norm, search_mode)
    JOIN search_rollup_sources n ON n.key_hash = k.key_hash
    GROUP BY c.query_norm, c.search_mode
)
SELECT c.query_norm, c.search_mode, c.count, coalesce(s.sessions, 0) AS sessions,
       coalesce(n.sources, 0) AS sources,
       (SELECT count FROM counts ORDER BY count DESC OFFSET $4 LIMIT 1) AS next_count
FROM candidates c LEFT JOIN sessions s USING (query_norm, search_mode)
    LEFT JOIN sources n USING (query_norm, search_mode)
ORDER BY sources DESC, sessions DESC, c.count DESC, c.query_norm ASC, c.search_mode ASC
LIMIT $3
"""
_HIDDEN_SQL = "SELECT query_norm FROM hidden_queries"
_HIDE_SQL = """
INSERT INTO hidden_queries (query_norm, hidden_by, hidden_at) VALUES ($1, $2, now())
ON CONFLICT (query_norm) DO NOTHING
"""
_HIDDEN_ONE_SQL = (
    "SELECT query_norm, hidden_by, hidden_at FROM hidden_queries WHERE query_norm = $1"
)
_UNHIDE_SQL = "DELETE FROM hidden_queries WHERE query_norm = $1"
_HIDDEN_PAGE_SQL = """
SELECT query_norm, hidden_by, hidden_at FROM hidden_queries
WHERE $1::text IS NULL OR query_norm > $1
ORDER BY query_norm LIMIT $2
"""


def _order(row: Ranked) -> tuple[int, int, int, str, str]:
    return (-row.sources, -row.sessions, -row.count, row.query, row.search_mode)


def _exact(rows: list[Ranked], next_count: int | None) -> bool:
    """True if no query outside the candidates can enter the top N."""
    if next_count is None or len(rows) < keys.POPULAR_TOP_N:
        return True  # every query of the window was a candidate
    return rows[-1].sources > next_count


@dataclass(frozen=True, slots=True)
class Hidden:
    query: str
    hidden_by: str
    hidden_at: datetime


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
                Ranked(
                    r["query_norm"],
                    r["search_mode"],
                    int(r["count"]),
                    int(r["sessions"]),
                    int(r["sources"]),
                )
                for r in found
            ]
            next_count = found[0]["next_count"] if found else None
            if _exact(rows, next_count):
                return rows
            candidates *= 4

    # ---- hidden queries (admin) ---------------------------------------------------------

    async def hide(self, query_norm: str, hidden_by: str) -> Hidden:
        """Hide a normalised query (idempotent: the first hide's who and when stay)."""
        await self._db.execute_query(_HIDE_SQL, [query_norm, hidden_by])
        rows = await self._db.execute_query_dict(_HIDDEN_ONE_SQL, [query_norm])
        await self.refresh_hidden()
        return _hidden(rows[0])

    async def unhide(self, query_norm: str) -> None:
        await self._db.execute_query(_UNHIDE_SQL, [query_norm])
        await self.refresh_hidden()

    async def hidden_page(self, after: str | None, limit: int) -> list[Hidden]:
        """Hidden queries in text order, after the cursor `after` (a query), `limit` of them."""
        rows = await self._db.execute_query_dict(_HIDDEN_PAGE_SQL, [after, limit])
        return [_hidden(r) for r in rows]

    async def refresh_hidden(self) -> set[str]:
        """The hidden set in Valkey, rebuilt from Postgres (absolute; marker = built)."""
        rows = await self._db.execute_query_dict(_HIDDEN_SQL)
        hidden = {r["query_norm"] for r in rows}
        tmp = keys.temporary(keys.HIDDEN_QUERIES, secrets.token_hex(4))
        async with self._valkey.pipeline(transaction=True) as pipe:
            pipe.sadd(tmp, keys.HIDDEN_BUILT_MARKER, *hidden)
            pipe.expire(tmp, keys.VIEW_KEEP_S)
            pipe.rename(tmp, keys.HIDDEN_QUERIES)
            await pipe.execute()
        return hidden

    # ---- the view's copies in Valkey ------------------------------------------------------

    async def _load(self, key: str) -> Snapshot[list[Ranked]] | None:
        async with self._valkey.pipeline(transaction=False) as pipe:
            pipe.zrange(key, 0, -1, withscores=True)
            pipe.smembers(keys.HIDDEN_QUERIES)
            entries, members = await pipe.execute()
        hidden = {_text(m) for m in members}
        if keys.HIDDEN_BUILT_MARKER not in hidden:  # expired or evicted: from Postgres
            hidden = await self.refresh_hidden()
        built_at: float | None = None
        rows = []
        for member, score in entries:  # (member, score) pairs: withscores=True
            text = _text(member)
            if text == keys.POPULAR_BUILT_MARKER:
                built_at = float(score)
                continue
            search_mode, _, rest = text.partition(SEPARATOR)
            count, _, query = rest.partition(SEPARATOR)
            if query in hidden:  # hidden after this copy was built
                continue
            sources, sessions = divmod(int(score), SCORE_SHIFT)
            rows.append(Ranked(query, search_mode, int(count), sessions, sources))
        if built_at is None:
            return None
        return Snapshot(sorted(rows, key=_order), built_at)

    async def _store(self, key: str, snapshot: Snapshot[list[Ranked]]) -> None:
        members: dict[str, float] = {keys.POPULAR_BUILT_MARKER: snapshot.built_at}
        for row in snapshot.value:
            members[f"{row.search_mode}{SEPARATOR}{row.count}{SEPARATOR}{row.query}"] = float(
                min(row.sources, 2**20) * SCORE_SHIFT + min(row.sessions, SCORE_SHIFT - 1)
            )
        tmp = keys.temporary(key, secrets.token_hex(4))
        async with self._valkey.pipeline(transaction=True) as pipe:
            pipe.zadd(tmp, members)
            pipe.expire(tmp, keys.VIEW_KEEP_S)
            pipe.rename(tmp, key)
            await pipe.execute()
        # Keep the hidden set alive while views are rebuilt (Postgres just answered): reads
        # then never need Postgres for it, not even when Postgres is down later.
        try:
            await self.refresh_hidden()
        except Exception as exc:  # the set stays as it was; a missing one is rebuilt on read
            log.warning("hidden queries set not refreshed: %s", exc)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _hidden(row: dict[str, Any]) -> Hidden:
    return Hidden(row["query_norm"], row["hidden_by"], row["hidden_at"])
