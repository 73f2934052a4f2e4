"""Seed for bench/plans.py: 100k builds / 1M votes / 5M search events with skewed, realistic
distributions, written by set-based SQL (generate_series); rollups and their session rows use
the search aggregator's key formula, so the ranking SQL sees what production would."""

from __future__ import annotations

import os
import time

import asyncpg

from service.contract.gamedata import CLASS_MATRIX, TEMPLATES

BUILDS = int(os.environ.get("PLANS_BUILDS", 100_000))
VOTES = int(os.environ.get("PLANS_VOTES", 1_000_000))
EVENTS = int(os.environ.get("PLANS_EVENTS", 5_000_000))
TABLES = (
    "builds, build_votes, feedback, search_events, search_rollups, search_rollup_sessions, "
    "search_rollup_sources, flush_log, feedback_rollups, feedback_rollup_sessions, feedback_daily, "
    "feedback_queries, search_zero_queries"
)
# Skewed like a real player base: tanks and clerics are common picks, bards rare.
ARCHETYPE_MIX = (
    "tank tank tank cleric cleric cleric mage mage fighter fighter rogue ranger summoner bard"
)
RACE_MIX = "kaelar kaelar kaelar vaelune dunir nikua empyrean pyrai renkai vek vek tulnar"
WORDS = (
    "tank build healer paladin mage pvp guide best ranger node siege bard cleric caravan castle",
    "dungeon raid gear leveling rogue summoner fighter augment weapon armor crafting gathering",
    "mount boss solo",
)

SEED_SQL = [
    (
        "builds",
        """
INSERT INTO builds (build_id, name, description, primary_archetype, secondary_archetype,
    class_name, race, is_public, is_template, owner_session, rating_sum, vote_count,
    created_at, updated_at)
SELECT 'b_' || lpad(to_hex(i), 8, '0'),
       initcap(adj) || ' ' || c.class_name || ' ' || i,
       CASE WHEN random() < 0.1 THEN NULL ELSE 'Built for ' || focus || ' with ' || style END,
       g.p, g.s, c.class_name, g.race, random() < 0.9, false,
       'sess_' || lpad(to_hex((i::int8 * 7919) % 40000), 24, '0'), 0, 0, created, created
FROM (SELECT i, m[1 + floor(random() * cardinality(m))::int] AS p,
             m[1 + floor(random() * cardinality(m))::int] AS s,
             r[1 + floor(random() * cardinality(r))::int] AS race,
             now() - random() ^ 2 * interval '365 days' AS created,
             (ARRAY['swift','iron','shadow','holy','wild','arcane','stout','grim'])
                 [1 + floor(random() * 8)::int] AS adj,
             (ARRAY['pvp','raids','sieges','solo leveling','caravans','node wars','dungeons'])
                 [1 + floor(random() * 7)::int] AS focus,
             (ARRAY['burst','sustain','crowd control','support','mobility','heavy armor'])
                 [1 + floor(random() * 6)::int] AS style
      FROM generate_series(1, $1::int) i,
           string_to_array($2::text, ' ') m, string_to_array($3::text, ' ') r) g
JOIN plans_classes c ON c.p = g.p AND c.s = g.s
""",
    ),
    (
        "votes (hot set: build rank ~ random()^3, 4 votes per session)",
        """
INSERT INTO build_votes (build_id, session_id, rating, created_at, source_network)
SELECT 'b_' || lpad(to_hex(1 + floor($1::int * random() ^ 3)::int), 8, '0'),
       'sess_' || lpad(to_hex(v / 4), 24, '0'),
       (ARRAY[5, 5, 5, 4, 4, 4, 3, 3, 2, 1])[1 + floor(random() * 10)::int],
       now() - random() ^ 2 * interval '365 days',
       -- 20,000 client networks (/24), about 12 sessions each
       '10.' || (v / 4 % 20000) / 256 || '.' || (v / 4 % 20000) % 256 || '.0/24'
FROM generate_series(1, $2::int) v
ON CONFLICT (build_id, session_id) DO NOTHING
""",
    ),
    (
        "tallies",
        """
UPDATE builds b SET rating_sum = v.s, vote_count = v.n
FROM (SELECT build_id, sum(rating)::int AS s, count(*)::int AS n
      FROM build_votes GROUP BY build_id) v
WHERE b.build_id = v.build_id
""",
    ),
    (
        "search events (Zipf-ish queries, 1M sessions, 90 days in time order)",
        """
INSERT INTO search_events (query, query_norm, search_mode, result_count, session_id,
    created_at, batch_id)
SELECT q, q, (ARRAY['quick', 'quick', 'quick', 'smart', 'smart', 'deep'])
                 [1 + floor(random() * 6)::int],
       -- ~1 in 8 searches finds nothing (content gaps), more for the long tail
       CASE WHEN random() < 0.05 + 0.15 * (qi >= 900)::int THEN 0
            ELSE 1 + floor(random() * 49)::int END,
       'sess_' || lpad(to_hex(floor(random() * 1000000)::int), 24, '0'),
       now() - interval '90 days' + (i::float8 / $1::int) * interval '90 days',
       md5((i / 10000)::text)::uuid
FROM (SELECT i, qi, w[1 + qi % 30] || ' ' || w[1 + (qi / 30) % 30]
                || CASE WHEN qi >= 900 THEN ' ' || w[1 + (qi / 900) % 30] ELSE '' END AS q
      FROM (SELECT i, floor(27900 * random() ^ 4)::int AS qi
            FROM generate_series(1, $1::int) i) x, string_to_array($2::text, ' ') w) e
""",
    ),
    (
        "rollups (the aggregator's key_hash formula)",
        """
INSERT INTO search_rollups (key_hash, hour, query_norm, search_mode, count, sessions,
                            sources, zero_count, zero_sessions)
SELECT hashtextextended(h::text || E'\\x1f' || query_norm || E'\\x1f' || search_mode, 0),
       to_timestamp(h * 3600), query_norm, search_mode, count(*), count(DISTINCT session_id),
       count(DISTINCT hashtextextended(session_id, 0) % 50000),
       count(*) FILTER (WHERE result_count = 0),
       count(DISTINCT session_id) FILTER (WHERE result_count = 0)
FROM (SELECT floor(extract(epoch FROM created_at) / 3600)::int8 AS h, query_norm,
             search_mode, session_id, result_count FROM search_events) e
GROUP BY h, query_norm, search_mode
""",
    ),
    (
        "rollup sessions",
        """
INSERT INTO search_rollup_sessions (key_hash, session_hash)
SELECT DISTINCT hashtextextended(h::text || E'\\x1f' || query_norm || E'\\x1f' || search_mode
                                || x, 0),
       hashtextextended(session_id, 0)
FROM (SELECT floor(extract(epoch FROM created_at) / 3600)::int8 AS h, query_norm,
             search_mode, session_id, result_count = 0 AS z FROM search_events) e
CROSS JOIN LATERAL unnest(CASE WHEN z THEN ARRAY['', E'\\x1f0'] ELSE ARRAY[''] END) AS x(x)
ORDER BY 1, 2
""",
    ),
    (
        "rollup sources (50,000 client networks: a hash of the session)",
        """
INSERT INTO search_rollup_sources (key_hash, source_hash)
SELECT DISTINCT hashtextextended(h::text || E'\\x1f' || query_norm || E'\\x1f' || search_mode, 0),
       hashtextextended(session_id, 0) % 50000
FROM (SELECT floor(extract(epoch FROM created_at) / 3600)::int8 AS h, query_norm,
             search_mode, session_id FROM search_events) e
ORDER BY 1, 2
""",
    ),
    (
        "flush_log",
        "INSERT INTO flush_log (batch_id, events, flushed_at) "
        "SELECT batch_id, count(*), max(created_at) FROM search_events GROUP BY batch_id",
    ),
]


async def seed(conn: asyncpg.Connection) -> None:
    counts = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM builds WHERE NOT is_template) AS b, "
        "(SELECT count(*) FROM search_events) AS e"
    )
    if (counts["b"], counts["e"]) == (BUILDS, EVENTS) and not os.environ.get("PLANS_RESEED"):
        print(f"seed present ({BUILDS} builds, {EVENTS} events): skipping", flush=True)
        await vacuum(conn)  # earlier runs leave dead rows (rolled-back batches): same stats
        return
    await conn.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'")
    await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    await conn.execute("CREATE TEMP TABLE plans_classes (p text, s text, class_name text)")
    await conn.executemany(
        "INSERT INTO plans_classes VALUES ($1, $2, $3)",
        [(p, s, name) for (p, s), name in CLASS_MATRIX.items()],
    )
    args = {
        "builds": (BUILDS, ARCHETYPE_MIX, RACE_MIX),
        "votes (hot set: build rank ~ random()^3, 4 votes per session)": (BUILDS, VOTES),
        "search events (Zipf-ish queries, 1M sessions, 90 days in time order)": (
            EVENTS,
            " ".join(WORDS),
        ),
    }
    for label, sql in SEED_SQL:
        started = time.perf_counter()
        await conn.execute(sql, *args.get(label, ()))
        print(f"  seeded {label} in {time.perf_counter() - started:.1f} s", flush=True)
    await conn.executemany(
        "INSERT INTO builds (build_id, name, description, primary_archetype, "
        "secondary_archetype, class_name, race, is_public, is_template, rating_sum, "
        "vote_count, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, true, true, 0, 0, now(), now())",
        [
            (t.build_id, t.name, t.description, t.primary, t.secondary, t.class_name, t.race)
            for t in TEMPLATES
        ],
    )
    await vacuum(conn)


async def vacuum(conn: asyncpg.Connection) -> None:
    """Visibility map (index-only scans) and fresh statistics, as autovacuum would leave them."""
    started = time.perf_counter()
    for table in TABLES.split(", "):
        await conn.execute(f"VACUUM (ANALYZE) {table}")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s", flush=True)
