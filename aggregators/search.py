"""SearchAggregator: buffered search events -> raw rows + hourly rollups, idempotent per batch.

One flush = BEGIN, flush_log insert, COPY of the raw rows, one statement for the distinct
session and source-network rows and the rollup upsert (keys sorted, pre-aggregated in
Python), when the batch has searches without results one upsert of their all-time totals per
query, COMMIT. A batch
keeps its id across retries; if its flush_log row already exists, the commit happened and
the batch is skipped, so a retry never counts twice.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from tortoise.backends.base.client import BaseDBAsyncClient

from aggregators.base import BatchingActor

# Bytes a buffered event holds besides its two query strings (tuple, session id, float,
# allocator overhead): measured 1.5 KB per event with 480-char queries (`make bench`).
EVENT_OVERHEAD_BYTES = 550
MAX_BATCH = 50_000
STATEMENT_TIMEOUT_S = 30.0
EVENT_COLUMNS = (
    "query",
    "query_norm",
    "search_mode",
    "result_count",
    "session_id",
    "created_at",
    "batch_id",
)


class SearchEvent(NamedTuple):
    query: str
    query_norm: str
    search_mode: str
    result_count: int
    session_id: str
    at: float  # time.time() at acceptance: rollups bucket by event time
    # The client's network (IPv4 /24, IPv6 /48): rollups keep distinct networks per key.
    source_network: str = ""


@dataclass(frozen=True)
class SearchBatch:
    batch_id: uuid.UUID
    events: list[SearchEvent]


_FLUSH_LOG_SQL = """
INSERT INTO flush_log (batch_id, events, flushed_at) VALUES ($1, $2, now())
ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id
"""

# $1..$4: (hour, query_norm, mode, session) of every event; $5..$8: event count per
# (hour, query_norm, mode); $9: every event's source network. Hours are epoch hours (UTC).
# Hashed keys keep the unique indexes narrow; rows are inserted in key order so concurrent
# flushes cannot deadlock.
# Content gaps: $10 = the event found nothing (result_count = 0), $11 = such events per key;
# their sessions are also kept under the key's zero key (the key's text with E'\\x1f0'
# appended; the content-gaps query in service/insights computes it the same way).
_ROLLUP_SQL = """
WITH new_sessions AS (
    INSERT INTO search_rollup_sessions (key_hash, session_hash)
    SELECT DISTINCT hashtextextended(h::text || E'\\x1f' || q || E'\\x1f' || m || x, 0),
           hashtextextended(s, 0)
    FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $10::bool[]) AS t(h, q, m, s, z)
    CROSS JOIN LATERAL unnest(CASE WHEN z THEN ARRAY['', E'\\x1f0'] ELSE ARRAY[''] END) AS x(x)
    ORDER BY 1, 2
    ON CONFLICT (key_hash, session_hash) DO NOTHING
    RETURNING key_hash
), session_counts AS (
    SELECT key_hash, count(*) AS n FROM new_sessions GROUP BY key_hash
), new_sources AS (
    INSERT INTO search_rollup_sources (key_hash, source_hash)
    SELECT DISTINCT hashtextextended(h::text || E'\\x1f' || q || E'\\x1f' || m, 0),
           hashtextextended(n, 0)
    FROM unnest($1::int8[], $2::text[], $3::text[], $9::text[]) AS t(h, q, m, n)
    ORDER BY 1, 2
    ON CONFLICT (key_hash, source_hash) DO NOTHING
    RETURNING key_hash
), source_counts AS (
    SELECT key_hash, count(*) AS n FROM new_sources GROUP BY key_hash
), counts AS (
    SELECT hashtextextended(h::text || E'\\x1f' || q || E'\\x1f' || m, 0) AS key_hash,
           hashtextextended(h::text || E'\\x1f' || q || E'\\x1f' || m || E'\\x1f0', 0) AS zero_key,
           to_timestamp(h * 3600) AS hour, q, m, n, zn
    FROM unnest($5::int8[], $6::text[], $7::text[], $8::int8[], $11::int8[]) AS t(h, q, m, n, zn)
)
INSERT INTO search_rollups AS r (key_hash, hour, query_norm, search_mode, count, sessions,
                                 sources, zero_count, zero_sessions)
SELECT c.key_hash, c.hour, c.q, c.m, c.n, coalesce(s.n, 0), coalesce(n.n, 0), c.zn,
       coalesce(z.n, 0)
FROM counts c LEFT JOIN session_counts s USING (key_hash)
    LEFT JOIN source_counts n USING (key_hash)
    LEFT JOIN session_counts z ON z.key_hash = c.zero_key
ORDER BY c.key_hash
ON CONFLICT (key_hash) DO UPDATE
    SET count = r.count + excluded.count, sessions = r.sessions + excluded.sessions,
        sources = r.sources + excluded.sources,
        zero_count = r.zero_count + excluded.zero_count,
        zero_sessions = r.zero_sessions + excluded.zero_sessions
"""


# All-time searches without results per query (content gaps' candidate bound), after the
# rollups in every flush (same lock order everywhere: rollups, then these, keys sorted).
_ZERO_TOTALS_SQL = """
INSERT INTO search_zero_queries AS z (query_norm, count, last_at)
SELECT q, sum(n), to_timestamp(max(h) * 3600)
FROM unnest($1::text[], $2::int8[], $3::int8[]) AS t(q, n, h)
GROUP BY q ORDER BY q
ON CONFLICT (query_norm) DO UPDATE
    SET count = z.count + excluded.count, last_at = greatest(z.last_at, excluded.last_at)
"""


def _zero_totals_args(events: list[SearchEvent]) -> list[list[str] | list[int]] | None:
    """Columns for _ZERO_TOTALS_SQL (one row per zero-result event), None without any."""
    zero = [e for e in events if e.result_count == 0]
    if not zero:
        return None
    return [[e.query_norm for e in zero], [1] * len(zero), [int(e.at // 3600) for e in zero]]


def _rollup_args(events: list[SearchEvent]) -> list[list[int] | list[str] | list[bool]]:
    """Columns for _ROLLUP_SQL: every event's key and session, event counts per key, every
    event's source network, and the zero-result flags and counts (content gaps)."""
    hours = [int(e.at // 3600) for e in events]
    queries = [e.query_norm for e in events]
    modes = [e.search_mode for e in events]
    sessions = [e.session_id for e in events]
    counts = Counter(zip(hours, queries, modes, strict=True))
    zero = [e.result_count == 0 for e in events]
    zero_counts = Counter(
        k for k, z in zip(zip(hours, queries, modes, strict=True), zero, strict=True) if z
    )
    keys = list(counts)
    return [
        hours,
        queries,
        modes,
        sessions,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        list(counts.values()),
        [e.source_network for e in events],
        zero,
        [zero_counts[k] for k in keys],
    ]


class SearchAggregator(BatchingActor[SearchEvent, SearchBatch]):
    name = "search"

    def __init__(
        self,
        db: BaseDBAsyncClient,
        *,
        interval_s: float,
        max_events: int,
        max_bytes: int,
    ) -> None:
        super().__init__(interval_s=interval_s, max_items=max_events, max_bytes=max_bytes)
        self._db = db
        self.statements = 0  # SQL statements sent by flushes (BEGIN/COMMIT included)

    def record(self, event: SearchEvent) -> bool:
        """Hot path: one append. False when the buffer is full (caller answers 503)."""
        return self.add(event, EVENT_OVERHEAD_BYTES + 2 * len(event.query))

    def _bytes_of(self, items: list[SearchEvent]) -> int:
        return sum(EVENT_OVERHEAD_BYTES + 2 * len(e.query) for e in items)

    def _batch_limit(self) -> int:
        return min(len(self._buffer), MAX_BATCH)

    def _accepted_at(self, item: SearchEvent) -> float:
        # Events carry wall-clock time (rollups bucket by it); their age maps onto monotonic.
        return time.monotonic() - max(0.0, time.time() - item.at)

    def _make_batch(self, items: list[SearchEvent]) -> SearchBatch:
        return SearchBatch(batch_id=uuid.uuid4(), events=items)

    async def write_through(self, event: SearchEvent) -> None:
        """Unbuffered mode (ANALYTICS_WRITE_THROUGH): one transaction per event."""
        self.stats.accepted += 1
        await self._write(self._make_batch([event]))
        self.stats.flushed += 1

    async def _write(self, batch: SearchBatch) -> None:
        if not batch.events:
            return
        batch_id = batch.batch_id
        records = [
            (
                e.query,
                e.query_norm,
                e.search_mode,
                e.result_count,
                e.session_id,
                datetime.fromtimestamp(e.at, UTC),
                batch_id,
            )
            for e in batch.events
        ]
        rollup_args = _rollup_args(batch.events)
        zero_args = _zero_totals_args(batch.events)
        async with self._db.acquire_connection() as conn, conn.transaction():
            self.statements += 2  # BEGIN, COMMIT
            fresh = await conn.fetchval(
                _FLUSH_LOG_SQL, batch_id, len(records), timeout=STATEMENT_TIMEOUT_S
            )
            self.statements += 1
            if fresh is None:
                return  # committed by an earlier attempt whose reply was lost
            await conn.copy_records_to_table(
                "search_events",
                records=records,
                columns=EVENT_COLUMNS,
                timeout=STATEMENT_TIMEOUT_S,
            )
            await conn.execute(_ROLLUP_SQL, *rollup_args, timeout=STATEMENT_TIMEOUT_S)
            self.statements += 2
            if zero_args is not None:
                await conn.execute(_ZERO_TOTALS_SQL, *zero_args, timeout=STATEMENT_TIMEOUT_S)
                self.statements += 1
