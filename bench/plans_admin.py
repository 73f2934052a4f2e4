"""Admin insights for bench/plans.py: 1M feedback rows (with their rollups, written set-based
with the service's key formula) and the plans of every admin read (target p99 <= 50 ms)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from aggregators import keys
from bench.plans_capture import Recorder, Row, measure
from bench.plans_seed import WORDS
from service.contract import insights as shapes
from service.insights import feedback_list, reports

FEEDBACK = int(os.environ.get("PLANS_FEEDBACK", 1_000_000))
TARGET_MS = 50.0

SEED_FEEDBACK = [
    (
        "feedback (Zipf-ish queries, 200k sessions, 90 days, 30% down, 20% with a comment)",
        """
INSERT INTO feedback (feedback_id, query, query_norm, response_snippet, search_mode, rating,
    comment, session_id, received_at, status, note, reviewed_by, reviewed_at)
SELECT 'f_' || lpad(to_hex(i), 8, '0'), q, q, 'The answer about ' || q,
       (ARRAY['quick', 'quick', 'smart', 'smart', 'smart', 'deep'])[1 + floor(random() * 6)::int],
       CASE WHEN down THEN 'down' ELSE 'up' END,
       CASE WHEN random() < 0.2 THEN
           (ARRAY['wrong class name', 'outdated since alpha 2', 'missing the quest step',
                  'great answer', 'the paladin part is wrong', 'too vague'])
               [1 + floor(random() * 6)::int] END,
       'sess_' || lpad(to_hex(floor(random() * 200000)::int), 24, '0'),
       now() - interval '90 days' + (i::float8 / $1::int) * interval '90 days',
       s, CASE WHEN s <> 'new' THEN 'checked' END, CASE WHEN s <> 'new' THEN 'Root' END,
       CASE WHEN s <> 'new' THEN now() END
FROM (SELECT i, random() < 0.3 + 0.3 * (qi % 7 = 0)::int AS down,
             (ARRAY['new', 'new', 'new', 'new', 'new', 'new', 'new', 'reviewed', 'reviewed',
                    'resolved'])[1 + floor(random() * 10)::int] AS s,
             w[1 + qi % 30] || ' ' || w[1 + (qi / 30) % 30]
                 || CASE WHEN qi >= 900 THEN ' ' || w[1 + (qi / 900) % 30] ELSE '' END AS q
      FROM (SELECT i, floor(27900 * random() ^ 4)::int AS qi
            FROM generate_series(1, $1::int) i) x, string_to_array($2::text, ' ') w) f
""",
    ),
    (
        "feedback keys",
        """
CREATE TEMP TABLE plans_feedback_keys AS
SELECT hashtextextended(((received_at AT TIME ZONE 'UTC')::date - DATE '1970-01-01')::text
           || E'\\x1f' || query_norm || E'\\x1f' || search_mode || E'\\x1f' || rating, 0)
           AS key_hash,
       (received_at AT TIME ZONE 'UTC')::date AS day, query_norm, search_mode, rating,
       session_id, received_at
FROM feedback
""",
    ),
    (
        "feedback rollup sessions",
        """
INSERT INTO feedback_rollup_sessions (key_hash, session_hash)
SELECT DISTINCT key_hash, hashtextextended(session_id, 0) FROM plans_feedback_keys
ORDER BY 1, 2
""",
    ),
    (
        "feedback rollups",
        """
INSERT INTO feedback_rollups (key_hash, day, query_norm, search_mode, rating, count, sessions,
    last_at)
SELECT key_hash, min(day), min(query_norm), min(search_mode), min(rating), count(*),
       count(DISTINCT session_id), max(received_at)
FROM plans_feedback_keys GROUP BY key_hash
""",
    ),
    (
        "feedback daily",
        """
INSERT INTO feedback_daily (day, search_mode, rating, count)
SELECT day, search_mode, rating, count(*) FROM plans_feedback_keys GROUP BY 1, 2, 3
""",
    ),
]


TOTALS = [
    (
        "feedback_queries",
        """
INSERT INTO feedback_queries (query_norm, down, up, last_at)
SELECT query_norm, count(*) FILTER (WHERE rating = 'down'), count(*) FILTER (WHERE rating = 'up'),
       max(received_at)
FROM feedback GROUP BY query_norm
""",
    ),
    (
        "search_zero_queries",
        """
INSERT INTO search_zero_queries (query_norm, count, last_at)
SELECT query_norm, sum(zero_count), max(hour) FROM search_rollups WHERE zero_count > 0
GROUP BY query_norm
""",
    ),
]


async def seed_totals(conn: asyncpg.Connection) -> None:
    """The all-time totals (kept by the insert and the flush), from the seeded rows."""
    for table, sql in TOTALS:
        if await conn.fetchval(f"SELECT count(*) FROM {table}"):
            continue
        started = time.perf_counter()
        await conn.execute(sql)
        await conn.execute(f"VACUUM (ANALYZE) {table}")
        print(f"  seeded {table} in {time.perf_counter() - started:.1f} s", flush=True)


async def seed_feedback(conn: asyncpg.Connection) -> None:
    present = await conn.fetchval("SELECT count(*) FROM feedback")
    if present == FEEDBACK and not os.environ.get("PLANS_RESEED"):
        print(f"feedback seed present ({FEEDBACK} rows): skipping", flush=True)
        await seed_totals(conn)
        return
    await conn.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'")
    await conn.execute(
        "TRUNCATE feedback, feedback_rollups, feedback_rollup_sessions, feedback_daily,"
        " feedback_queries RESTART IDENTITY"
    )
    for label, sql in SEED_FEEDBACK:
        started = time.perf_counter()
        args = (FEEDBACK, " ".join(WORDS)) if label.startswith("feedback (") else ()
        await conn.execute(sql, *args)
        print(f"  seeded {label} in {time.perf_counter() - started:.1f} s", flush=True)
    await conn.execute("DROP TABLE plans_feedback_keys")
    for table in ("feedback", "feedback_rollups", "feedback_rollup_sessions", "feedback_daily"):
        await conn.execute(f"VACUUM (ANALYZE) {table}")
    await seed_totals(conn)


def _list_cases(middle: shapes.Cursor) -> list[tuple[str, dict[str, Any]]]:
    today = datetime.now(UTC).date()
    return [
        ("no filter (first page of 50)", {}),
        ("status=new", {"status": "new"}),
        ("status=resolved", {"status": "resolved"}),
        ("rating=down", {"rating": "down"}),
        ("search_mode=deep", {"search_mode": "deep"}),
        ("rating=down & status=new & search_mode=smart", {"rating": "down", "status": "new",
                                                           "search_mode": "smart"}),
        ("from=to=a day 30 days ago", {"from": (today - timedelta(days=30)).isoformat(),
                                       "to": (today - timedelta(days=30)).isoformat()}),
        ("q=paladin (common word in comments)", {"q": "paladin"}),
        ("q=caravan castle (query words)", {"q": "caravan castle"}),
        ("q=quest step & status=new", {"q": "quest step", "status": "new"}),
        ("q=nothing matches this", {"q": "nothing matches this"}),
        ("cursor 1/5 deep (limit 20)", {"cursor": middle.encode(), "limit": 20}),
        ("limit=100, status=reviewed", {"limit": 100, "status": "reviewed"}),
    ]  # fmt: skip


async def plans(conn: asyncpg.Connection, recorder: Recorder, rows: list[Row], runs: int) -> None:
    print("admin insights (1M feedback, 5M search events)")
    await seed_feedback(conn)
    record = await conn.fetchrow(
        "SELECT received_at, feedback_id FROM feedback ORDER BY received_at DESC, feedback_id"
        " DESC OFFSET $1 LIMIT 1",
        FEEDBACK // 5,
    )
    middle = shapes.Cursor(record["received_at"], record["feedback_id"])
    for label, params in _list_cases(middle):
        q = shapes.FeedbackListQuery(**{k.replace("from", "from_"): v for k, v in params.items()})
        run = lambda q=q: feedback_list.list_feedback(q)  # noqa: E731
        statements = await recorder.capture(run)
        await measure(conn, rows, "admin feedback list", label, statements, run, runs)
    for days in (7, 30, 90, 365):
        run = lambda d=days: reports.summary(d)  # noqa: E731
        statements = await recorder.capture(run)
        await measure(conn, rows, "admin summary", f"days={days}", statements, run, runs)
    # Patterns and content gaps are served from Valkey copies (service/insights/views.py);
    # these rows are the rebuild (top 100 of a window), off the request path.
    for days in (7, 30, 90, 365):
        run = lambda d=days: reports.patterns(d, keys.PATTERNS_TOP_N)  # noqa: E731
        statements = await recorder.capture(run)
        label = f"rebuild days={days}, top {keys.PATTERNS_TOP_N} ({len(statements)} statements)"
        await measure(conn, rows, "admin patterns", label, statements, run, runs)
    for days in (1, 7, 30, 90):
        run = lambda d=days: reports.content_gaps(d, keys.CONTENT_GAPS_TOP_N)  # noqa: E731
        statements = await recorder.capture(run)
        label = f"rebuild days={days}, top {keys.CONTENT_GAPS_TOP_N} ({len(statements)} statements)"
        await measure(conn, rows, "admin content gaps", label, statements, run, runs)
    sample = await conn.fetchval(
        "SELECT feedback_id FROM feedback OFFSET $1 LIMIT 1", FEEDBACK // 2
    )
    review_sql = feedback_list._REVIEW_SQL
    values = [sample, "reviewed", True, "checked", "Root", "steam:1", datetime.now(UTC)]
    await measure(
        conn, rows, "admin review", "PATCH one item (rolled back)", [(review_sql, values)],
        None, runs, rollback=True,
    )  # fmt: skip


def summary_line(rows: list[Row]) -> list[str]:
    admin = [r for r in rows if r["group"].startswith("admin") and "rebuild" not in r["label"]]
    if not admin:
        return []
    worst = max(admin, key=lambda r: r["p99"])
    over = [f"{r['group']}: {r['label']}" for r in admin if not r["p99"] <= TARGET_MS]
    return [
        f"**Admin:** {len(admin)} cases, worst p99 {worst['p99']:.1f} ms ({worst['group']}: "
        f"{worst['label']}); over {TARGET_MS:.0f} ms: {', '.join(over) or 'none'}. Patterns "
        "and content gaps are answered from Valkey copies (bench/results/admin_endpoints.md); "
        "their rows below are the background rebuilds.",
        "",
    ]
