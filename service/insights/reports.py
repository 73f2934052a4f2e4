"""Admin reports from the rollups: satisfaction summary and trend, negative patterns, content
gaps. Never a scan of raw rows per view: feedback_daily (a few rows per day), feedback_rollups
(per day, mode, normalised query, rating) and search_rollups (per hour, query, mode); raw rows
are read only through indexes for the few items shown (sample comments).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from tortoise import connections

from service.contract import insights as shapes
from service.contract.formats import iso
from service.contract.gamedata import SEARCH_MODES

Clock = Callable[[], datetime]
SAMPLE_COMMENTS = 3
FIRST_CANDIDATES = 50


def _now() -> datetime:
    return datetime.now(UTC)


def first_day(days: int, now: datetime) -> date:
    """The window's first UTC date: `days` dates ending today."""
    return now.astimezone(UTC).date() - timedelta(days=days - 1)


_DAILY_SQL = """
SELECT day, search_mode, rating, count FROM feedback_daily WHERE day >= $1
"""


async def summary(days: int, clock: Clock = _now) -> shapes.Summary:
    start = first_day(days, clock())
    rows = await connections.get("default").execute_query_dict(_DAILY_SQL, [start])
    counts: dict[tuple[date, str, str], int] = {
        (r["day"], r["search_mode"], r["rating"]): int(r["count"]) for r in rows
    }
    daily = []
    mode_totals = {mode: [0, 0] for mode in SEARCH_MODES}
    for offset in range(days):
        day = start + timedelta(days=offset)
        for mode in SEARCH_MODES:
            up, down = counts.get((day, mode, "up"), 0), counts.get((day, mode, "down"), 0)
            mode_totals[mode][0] += up
            mode_totals[mode][1] += down
            daily.append(
                shapes.DailyCount(day=day.isoformat(), search_mode=mode, up=up, down=down)  # type: ignore[arg-type]
            )
    by_mode = {mode: shapes.satisfaction(up, down) for mode, (up, down) in mode_totals.items()}
    up = sum(t[0] for t in mode_totals.values())
    down = sum(t[1] for t in mode_totals.values())
    return shapes.Summary(
        days=days,
        totals=shapes.satisfaction(up, down),
        by_mode=shapes.ByMode(**by_mode),
        daily=daily,
    )


# Ranked by thumbs-down, then down rate, then query text (stable). Sessions: the thumbs-down
# rollup rows' distinct sessions summed (a session counts once per UTC day and mode: exact
# distinct counts over a long window cost O(sessions), see bench/results/plans.md); comments:
# the latest thumbs-down comments. {rows} is where the window's rollup rows come from: all of
# them (a short window), or only those of the candidates with the most thumbs-down of all
# time ($5 of them, a long window; covering index feedback_rollups_query_idx).
_PATTERNS_SQL = """
WITH agg AS (
    SELECT query_norm,
           coalesce(sum(count) FILTER (WHERE rating = 'down'), 0)::bigint AS down,
           coalesce(sum(count) FILTER (WHERE rating = 'up'), 0)::bigint AS up,
           coalesce(sum(sessions) FILTER (WHERE rating = 'down'), 0)::bigint AS sessions,
           max(last_at) AS last_at
    FROM ({rows}) w GROUP BY query_norm
), top AS (
    SELECT * FROM agg WHERE down > 0
    ORDER BY down DESC, down::float8 / (down + up) DESC, query_norm LIMIT $2
)
SELECT t.query_norm, t.down, t.up, t.last_at, t.sessions,
       ARRAY(SELECT f.comment FROM feedback f
             WHERE f.query_norm = t.query_norm AND f.rating = 'down'
               AND f.comment IS NOT NULL AND f.received_at >= $3
             ORDER BY f.received_at DESC LIMIT $4) AS comments
FROM top t
ORDER BY t.down DESC, t.down::float8 / (t.down + t.up) DESC, t.query_norm
"""
_PATTERNS_DIRECT_SQL = _PATTERNS_SQL.format(
    rows="SELECT query_norm, rating, count, sessions, last_at FROM feedback_rollups"
    " WHERE day >= $1",
)
_PATTERNS_PRUNED_SQL = _PATTERNS_SQL.format(
    rows="""
    SELECT r.query_norm, r.rating, r.count, r.sessions, r.last_at
    FROM (SELECT query_norm FROM feedback_queries WHERE down > 0
          ORDER BY down DESC, query_norm LIMIT $5) c
    -- ORDER BY day: read in index order (an index-only scan of the covering index; the
    -- planner's per-query row estimate is far too low and would pick a bitmap heap scan)
    CROSS JOIN LATERAL (
        SELECT query_norm, rating, count, sessions, last_at FROM feedback_rollups
        WHERE query_norm = c.query_norm AND day >= $1 ORDER BY day) r""",
)
# The all-time thumbs-down of the best query left out of $1 candidates (None: none left).
_PATTERNS_BOUND_SQL = """
SELECT down FROM feedback_queries WHERE down > 0 ORDER BY down DESC, query_norm OFFSET $1 LIMIT 1
"""
_WINDOW_SIZE_SQL = "SELECT coalesce(sum(count), 0)::bigint AS n FROM feedback_daily WHERE day >= $1"
# A window with at most this much feedback is ranked from all its rollup rows (a few ms);
# above it, from the rollup rows of the all-time top candidates only.
DIRECT_MAX_FEEDBACK = 20_000
FIRST_PRUNED = 10  # extra candidates of the first pruned try; x4 per retry up to MAX_CANDIDATES
MAX_CANDIDATES = 5_000


def _exact(rows: list[dict[str, Any]], limit: int, key: str, bound: int | None) -> bool:
    """No item outside the candidates can enter the result: its window number (`key`) is at
    most its all-time one, at most `bound` (a tie could reorder: not exact)."""
    return bound is None or (len(rows) == limit and int(rows[-1][key]) > bound)


async def _bound(sql: str, candidates: int) -> int | None:
    found = await connections.get("default").execute_query_dict(sql, [candidates])
    return int(next(iter(found[0].values()))) if found else None


async def _pattern_rows(start: date, since: datetime, limit: int) -> list[dict[str, Any]]:
    db = connections.get("default")
    window = await db.execute_query_dict(_WINDOW_SIZE_SQL, [start])
    args: list[Any] = [start, limit, since, SAMPLE_COMMENTS]
    if int(window[0]["n"]) > DIRECT_MAX_FEEDBACK:
        candidates = limit + FIRST_PRUNED
        while candidates <= MAX_CANDIDATES:
            rows: list[dict[str, Any]] = await db.execute_query_dict(
                _PATTERNS_PRUNED_SQL, [*args, candidates]
            )
            if _exact(rows, limit, "down", await _bound(_PATTERNS_BOUND_SQL, candidates)):
                return rows
            candidates *= 4
    direct: list[dict[str, Any]] = await db.execute_query_dict(_PATTERNS_DIRECT_SQL, args)
    return direct


async def patterns(days: int, limit: int, clock: Clock = _now) -> shapes.Patterns:
    start = first_day(days, clock())
    since = datetime.combine(start, time(), UTC)
    rows = await _pattern_rows(start, since, limit)
    items = [
        shapes.Pattern(
            query=r["query_norm"],
            down=int(r["down"]),
            up=int(r["up"]),
            down_rate=round(int(r["down"]) / (int(r["down"]) + int(r["up"])), 4),
            sessions=int(r["sessions"]),
            last_at=iso(r["last_at"]),
            sample_comments=list(r["comments"]),
        )
        for r in rows
    ]
    return shapes.Patterns(items=items)


# Queries searched with result_count = 0, ranked by distinct sessions, then searches, then text.
# Distinct sessions are counted for the candidates with the most such searches only (sessions
# <= searches): exact when the last item shown has more sessions than the best query left out
# has searches, else the candidate set grows (content_gaps). A key's zero key is the search
# aggregator's formula (aggregators/search.py) with E'\x1f0' appended. last_at: the hour.
_GAPS_SQL = """
WITH keys AS MATERIALIZED (
    SELECT hour, query_norm, search_mode, zero_count FROM search_rollups
    WHERE zero_count > 0 AND hour >= date_trunc('hour', $1::timestamptz)
), counts AS MATERIALIZED (
    SELECT query_norm, sum(zero_count)::bigint AS count, max(hour) AS last_at
    FROM keys GROUP BY query_norm
), candidates AS (
    SELECT * FROM counts ORDER BY count DESC, query_norm LIMIT $3
), sessions AS (
    SELECT c.query_norm, count(DISTINCT s.session_hash)::bigint AS sessions
    FROM candidates c JOIN keys k USING (query_norm)
    JOIN search_rollup_sessions s ON s.key_hash = hashtextextended(
        (extract(epoch FROM k.hour)::bigint / 3600)::text || E'\\x1f' || k.query_norm
        || E'\\x1f' || k.search_mode || E'\\x1f0', 0)
    GROUP BY c.query_norm
)
SELECT c.query_norm, c.count, c.last_at, coalesce(s.sessions, 0) AS sessions,
       (SELECT count FROM counts ORDER BY count DESC OFFSET $3 LIMIT 1) AS next_count
FROM candidates c LEFT JOIN sessions s USING (query_norm)
ORDER BY sessions DESC, c.count DESC, c.query_norm
LIMIT $2
"""


# A long window: only the rollup rows of the queries with the most searches without results of
# all time ($3 of them), through the partial index (query_norm, hour) WHERE zero_count > 0.
_GAPS_PRUNED_SQL = """
WITH keys AS MATERIALIZED (
    SELECT r.hour, r.query_norm, r.search_mode, r.zero_count
    FROM (SELECT query_norm FROM search_zero_queries ORDER BY count DESC, query_norm LIMIT $3) c
    CROSS JOIN LATERAL (
        SELECT hour, query_norm, search_mode, zero_count FROM search_rollups
        WHERE query_norm = c.query_norm AND zero_count > 0
          AND hour >= date_trunc('hour', $1::timestamptz)
        ORDER BY hour) r
), counts AS MATERIALIZED (
    SELECT query_norm, sum(zero_count)::bigint AS count, max(hour) AS last_at
    FROM keys GROUP BY query_norm
), sessions AS (
    SELECT c.query_norm, count(DISTINCT s.session_hash)::bigint AS sessions
    FROM counts c JOIN keys k USING (query_norm)
    JOIN search_rollup_sessions s ON s.key_hash = hashtextextended(
        (extract(epoch FROM k.hour)::bigint / 3600)::text || E'\\x1f' || k.query_norm
        || E'\\x1f' || k.search_mode || E'\\x1f0', 0)
    GROUP BY c.query_norm
)
SELECT c.query_norm, c.count, c.last_at, coalesce(s.sessions, 0) AS sessions
FROM counts c LEFT JOIN sessions s USING (query_norm)
ORDER BY sessions DESC, c.count DESC, c.query_norm
LIMIT $2
"""
_GAPS_BOUND_SQL = """
SELECT count FROM search_zero_queries ORDER BY count DESC, query_norm OFFSET $1 LIMIT 1
"""
# Windows up to this many days are ranked from all their rollup rows; longer ones from the
# all-time top candidates first (their bound is tight there, loose for a short window).
GAPS_DIRECT_DAYS = 7


async def _gap_rows(days: int, limit: int, since: datetime) -> list[dict[str, Any]]:
    db = connections.get("default")
    if days > GAPS_DIRECT_DAYS:
        candidates = limit + FIRST_PRUNED
        while candidates <= MAX_CANDIDATES:
            rows: list[dict[str, Any]] = await db.execute_query_dict(
                _GAPS_PRUNED_SQL, [since, limit, candidates]
            )
            if _exact(rows, limit, "sessions", await _bound(_GAPS_BOUND_SQL, candidates)):
                return rows
            candidates *= 4
    candidates = max(FIRST_CANDIDATES, limit)
    while True:
        found: list[dict[str, Any]] = await db.execute_query_dict(
            _GAPS_SQL, [since, limit, candidates]
        )
        next_count = found[0]["next_count"] if found else None
        if next_count is None or int(found[-1]["sessions"]) > int(next_count):
            return found
        candidates *= 4


async def content_gaps(days: int, limit: int, clock: Clock = _now) -> shapes.ContentGaps:
    since = clock() - timedelta(days=days)
    rows = await _gap_rows(days, limit, since)
    items = [
        shapes.ContentGap(
            query=r["query_norm"],
            sessions=int(r["sessions"]),
            count=int(r["count"]),
            last_at=iso(r["last_at"]),
        )
        for r in rows
    ]
    return shapes.ContentGaps(items=items)
