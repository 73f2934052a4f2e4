"""Popular search queries: Valkey top-N sets rebuilt from Postgres rollups, single-flight.

Ranking: distinct sessions, then count, then query text. Each (days, mode) view is a sorted
set of the top POPULAR_TOP_N keys with score = sessions * 2**32 + count, rebuilt into a temp
key and RENAMEd over the live one, with a TTL of at most POPULAR_TTL_S (the freshness bound).
A miss, or Valkey being down, falls back to Postgres; concurrent misses for the same view in
one worker share a single query.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from tortoise.backends.base.client import BaseDBAsyncClient

from aggregators import keys

log = logging.getLogger("myashes.aggregators.popular")
SCORE_SHIFT = 2**32
SEPARATOR = "\x1f"


@dataclass(frozen=True, slots=True)
class Ranked:
    query: str
    search_mode: str
    count: int
    sessions: int


_RANKING_SQL = """
WITH keys AS (
    SELECT key_hash, query_norm, search_mode, count
    FROM search_rollups
    WHERE hour >= date_trunc('hour', $1::timestamptz)
      AND ($2::text IS NULL OR search_mode = $2)
), counts AS (
    SELECT query_norm, search_mode, sum(count)::bigint AS count
    FROM keys GROUP BY query_norm, search_mode
), sessions AS (
    SELECT k.query_norm, k.search_mode, count(DISTINCT s.session_hash)::bigint AS sessions
    FROM keys k JOIN search_rollup_sessions s USING (key_hash)
    GROUP BY k.query_norm, k.search_mode
)
SELECT c.query_norm, c.search_mode, c.count, coalesce(s.sessions, 0) AS sessions
FROM counts c LEFT JOIN sessions s USING (query_norm, search_mode)
ORDER BY sessions DESC, c.count DESC, c.query_norm ASC, c.search_mode ASC
LIMIT $3
"""


def _order(row: Ranked) -> tuple[int, int, str, str]:
    return (-row.sessions, -row.count, row.query, row.search_mode)


class PopularQueries:
    def __init__(
        self,
        db: BaseDBAsyncClient,
        valkey: Redis,
        *,
        ttl_s: int = keys.POPULAR_TTL_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._valkey = valkey
        self.ttl_s = ttl_s
        self._clock = clock
        self._inflight: dict[tuple[int, str | None], asyncio.Future[list[Ranked]]] = {}
        self.rebuilds = 0
        self.fallbacks = 0

    async def top(self, days: int, mode: str | None, limit: int) -> list[Ranked]:
        cached = await self._read(days, mode)
        if cached is None:
            cached = await self._single_flight((days, mode), lambda: self._rebuild(days, mode))
        return cached[:limit]

    async def _read(self, days: int, mode: str | None) -> list[Ranked] | None:
        try:
            entries: list[Any] = await self._valkey.zrange(
                keys.popular_queries(days, mode), 0, -1, withscores=True
            )
        except (RedisError, OSError):
            return None
        if not entries:
            return None
        rows = []
        for member, score in entries:  # (member, score) pairs: withscores=True
            text = member.decode() if isinstance(member, bytes) else str(member)
            if text == keys.POPULAR_BUILT_MARKER:
                continue
            search_mode, _, query = text.partition(SEPARATOR)
            sessions, count = divmod(int(score), SCORE_SHIFT)
            rows.append(Ranked(query, search_mode, count, sessions))
        return sorted(rows, key=_order)

    async def _single_flight(
        self, key: tuple[int, str | None], make: Callable[[], Awaitable[list[Ranked]]]
    ) -> list[Ranked]:
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
            try:
                future.set_result(await make())
            except BaseException as exc:
                future.set_exception(exc)
                raise
            finally:
                del self._inflight[key]
            return future.result()
        return await asyncio.shield(future)

    async def query_postgres(self, days: int, mode: str | None) -> list[Ranked]:
        since = self._clock() - timedelta(days=days)
        rows = await self._db.execute_query_dict(_RANKING_SQL, [since, mode, keys.POPULAR_TOP_N])
        return [
            Ranked(r["query_norm"], r["search_mode"], int(r["count"]), int(r["sessions"]))
            for r in rows
        ]

    async def _rebuild(self, days: int, mode: str | None) -> list[Ranked]:
        rows = await self.query_postgres(days, mode)
        self.rebuilds += 1
        live = keys.popular_queries(days, mode)
        tmp = keys.popular_queries_tmp(days, mode, secrets.token_hex(4))
        members: dict[str, float] = {keys.POPULAR_BUILT_MARKER: -1.0}
        for row in rows:
            members[f"{row.search_mode}{SEPARATOR}{row.query}"] = float(
                min(row.sessions, 2**20) * SCORE_SHIFT + min(row.count, SCORE_SHIFT - 1)
            )
        try:
            async with self._valkey.pipeline(transaction=True) as pipe:
                pipe.zadd(tmp, members)
                pipe.expire(tmp, self.ttl_s)
                pipe.rename(tmp, live)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self.fallbacks += 1
            log.warning("popular queries served from Postgres (Valkey: %s)", exc)
        return rows
