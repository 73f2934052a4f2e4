"""`make plans`: EXPLAIN (ANALYZE, BUFFERS) of the SQL the service runs, at scale.

Seeds 100k builds / 1M votes / 5M search events (rollups and session rows written with the
search aggregator's key formula) into a dedicated database, ANALYZEs, then for every list
filter x sort, one build, popular builds per period, the popular-queries ranking and the
vote/search batch statements and every admin insights read (1M feedback rows, bench/plans_admin.py):
the plan (index or seq scans), the execution time and, for reads, p50/p99 over PLANS_RUNS runs
(list target: p99 < 20 ms; admin: p99 <= 50 ms). Writes bench/results/plans.md.

Database: PLANS_DATABASE_URL (it is TRUNCATEd: use a scratch database), else the embedded
cluster under .data/pg, database myashes_plans. Reseeds only when the row counts differ
(PLANS_RESEED=1 forces). Scale: PLANS_BUILDS, PLANS_VOTES, PLANS_EVENTS; PLANS_RUNS (200);
PLANS_FEEDBACK (1M); PLANS_GROUPS=list,one,popular_builds,popular_queries,proposal,votes,
search_flush,admin picks groups; PLANS_LIST_ONLY=search= keeps the list cases whose filter label
contains that text; PLANS_OUTPUT names the file under bench/results (plans.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aggregators import popular  # noqa: E402
from bench import plans_admin  # noqa: E402
from bench.plans_capture import (  # noqa: E402
    Recorder,
    Row,
    capture_search_flush,
    capture_votes,
    first_line,
    measure,
    rejected,
    timed_out,
)
from bench.plans_seed import BUILDS, seed  # noqa: E402
from service.builds import popular as popular_builds  # noqa: E402
from service.builds import queries as build_queries  # noqa: E402
from service.builds import store as builds  # noqa: E402
from service.contract import schemas  # noqa: E402
from service.contract.errors import BuildNotFound, ValidationFailed  # noqa: E402
from service.runtime import db  # noqa: E402

RUNS = int(os.environ.get("PLANS_RUNS", 200))
TARGET_MS = 20.0
RESULTS = ROOT / "bench" / "results"

LIST_FILTERS: list[tuple[str, dict[str, Any]]] = [
    ("no filter", {}),
    ("primary_archetype=tank", {"primary_archetype": "tank"}),
    ("secondary_archetype=bard", {"secondary_archetype": "bard"}),
    ("race=tulnar", {"race": "tulnar"}),
    ("class_name=paladin", {"class_name": "paladin"}),
    ("is_template=true", {"is_template": True}),
    ("is_template=false", {"is_template": False}),
    ("search=guardian", {"search": "guardian"}),
    ("search=sieges", {"search": "sieges"}),
    # Issue 17: short, punctuation-heavy and very common terms (the review's attacks).
    ("search=%% (short)", {"search": "%%"}),
    ("search=ab (short)", {"search": "ab"}),
    ("search=zzq (rare, 3 letters)", {"search": "zzq"}),
    ("search=%%%%%% (punctuation)", {"search": "%%%%%%"}),
    ("search=a.b.c (punctuation)", {"search": "a.b.c"}),
    ("search=--tank-- (punctuation)", {"search": "--tank--"}),
    ("search=with (common: 90% of rows)", {"search": "with"}),
    ("search=tank (common)", {"search": "tank"}),
    ("search=iron (common: 1 in 8 names)", {"search": "iron"}),
    ("search=with raids (common words, rare phrase)", {"search": "with raids"}),
    (
        "primary=bard & secondary=summoner & race=pyrai",
        {"primary_archetype": "bard", "secondary_archetype": "summoner", "race": "pyrai"},
    ),
]
SORTS = ("newest", "rating", "popular")
DEEP_PAGES = (50, 1000)  # page x 20: the OFFSET cost


# Proposed replacement for aggregators/popular._RANKING_SQL: distinct sessions are counted
# only for the PRUNE_CANDIDATES queries with the most searches (sessions <= count, so any
# other query ranks lower while next_count < the 50th sessions; else retry with more).
PRUNE_CANDIDATES = 200
PRUNED_RANKING_SQL = """
WITH keys AS MATERIALIZED (
    SELECT key_hash, query_norm, search_mode, count FROM search_rollups
    WHERE hour >= date_trunc('hour', $1::timestamptz) AND ($2::text IS NULL OR search_mode = $2)
), counts AS (
    SELECT query_norm, search_mode, sum(count)::bigint AS count FROM keys GROUP BY 1, 2
), candidates AS (
    SELECT * FROM counts ORDER BY count DESC LIMIT $4
), sessions AS (
    SELECT k.query_norm, k.search_mode, count(DISTINCT s.session_hash)::bigint AS sessions
    FROM candidates c JOIN keys k USING (query_norm, search_mode)
    JOIN search_rollup_sessions s ON s.key_hash = k.key_hash
    GROUP BY 1, 2
)
SELECT c.query_norm, c.search_mode, c.count, coalesce(s.sessions, 0) AS sessions,
       (SELECT count FROM counts ORDER BY count DESC OFFSET $4 LIMIT 1) AS next_count
FROM candidates c LEFT JOIN sessions s USING (query_norm, search_mode)
ORDER BY sessions DESC, c.count DESC, c.query_norm, c.search_mode LIMIT $3
"""


class Plans:
    """One method per group of statements; each appends measured rows."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.rows: list[Row] = []
        self.recorder = Recorder()
        self.rng = random.Random(1)
        self.ranking = popular.PopularQueries(self.recorder.client, None)  # type: ignore[arg-type]

    async def list(self) -> None:
        print("list (GET /builds: count + page; timing = build_queries.list_builds())")
        only = os.environ.get("PLANS_LIST_ONLY")  # e.g. "search=": filters whose label has it
        cases = [
            (f"{name}, sort={sort}", {**f, "sort": sort})
            for name, f in LIST_FILTERS
            for sort in SORTS
            if not only or only in name
        ]
        cases += [
            (f"no filter, sort={s}, page={p}", {"sort": s, "page": p})
            for p in DEEP_PAGES
            for s in ("newest", "rating")
            if not only
        ]
        for label, params in cases:
            try:  # what the API does with the query string: parse, then check()
                q = msgspec.convert(params, schemas.BuildListQuery)
                q.check()
            except (msgspec.ValidationError, ValidationFailed) as exc:
                rejected(self.rows, "list", label, str(exc))
                continue
            run = lambda q=q: build_queries.list_builds(q)  # noqa: E731
            setup = None
            if q.search is None:
                statements = await self.recorder.capture(run)
            else:  # its own transaction on a raw connection, after SEARCH_SETTINGS
                count_sql, page_sql, values = build_queries.list_statements(q)
                statements = [(count_sql, values[:-2]), (page_sql, values)]
                setup = build_queries.SEARCH_SETTINGS
            try:
                await measure(
                    self.conn, self.rows, "list", label, statements, run, RUNS, setup=setup
                )
            except asyncpg.QueryCanceledError:  # over SEARCH_TIMEOUT_MS: the API answers 503
                await timed_out(self.rows, "list", label, run)

    async def one(self) -> None:
        print("GET /builds/{id}")
        ids = [f"b_{1 + int(BUILDS * self.rng.random() ** 3):08x}" for _ in range(RUNS)]
        session = "sess_" + "0" * 24

        async def load_one() -> None:
            with contextlib.suppress(BuildNotFound):  # another session's private build
                await builds.load_visible(self.rng.choice(ids), session)

        statements = await self.recorder.capture(load_one)
        label = "load_visible (random, hot-skewed ids)"
        await measure(self.conn, self.rows, "one build", label, statements, load_one, RUNS)

    async def popular_builds(self) -> None:
        print("GET /builds/popular")
        for period in ("day", "week", "month", "all"):
            for include in (False, True):
                pq = schemas.PopularBuildsQuery(period=period, limit=5, include_templates=include)
                run = lambda pq=pq: popular_builds.rank(pq.period, pq.include_templates)  # noqa: E731
                sql, window = popular_builds.rank_statement(period)
                since = [datetime.now(UTC) - w for w in window]
                values = [include, popular_builds.RANKED, popular_builds.FIRST_CANDIDATES]
                statements = [(sql, values + since)]
                label = f"view rebuild: period={period}, include_templates={str(include).lower()}"
                runs = max(3, RUNS // 10)  # once per VIEW_REFRESH_AFTER_S in the cluster
                await measure(
                    self.conn,
                    self.rows,
                    "popular builds",
                    label,
                    statements,
                    run,
                    runs,
                    setup=popular_builds.RANK_SETTINGS,
                )
        ranked = await popular_builds.rank("week", False)
        read = lambda: popular_builds.current(ranked, 5)  # noqa: E731
        statements = await self.recorder.capture(read)
        label = f"every request: the {len(ranked)} ranked builds by id, public now"
        await measure(self.conn, self.rows, "popular builds", label, statements, read, RUNS)

    async def popular_queries(self) -> None:
        print("popular queries ranking (Valkey rebuild / fallback)")
        for days in (1, 7, 30, 90):
            for mode in (None, "smart"):
                run = lambda d=days, m=mode: self.ranking.query_postgres(d, m)  # noqa: E731
                statements = await self.recorder.capture(run)
                label = f"days={days}, mode={mode or 'all'}"
                runs = max(3, RUNS // 20)
                await measure(self.conn, self.rows, "popular queries", label, statements, run, runs)

    async def proposal(self) -> None:
        print("proposal: pruned ranking (exact while next_count < 50th sessions)")
        for days in (1, 7, 90):
            since = datetime.now(UTC) - timedelta(days=days)
            values = [since, None, 50, PRUNE_CANDIDATES]
            got = await self.conn.fetch(PRUNED_RANKING_SQL, *values)
            want = await self.ranking.query_postgres(days, None) if days <= 7 else None
            same = (
                "n/a" if want is None else [r["query_norm"] for r in got] == [w.query for w in want]
            )
            exact = bool(got) and got[-1]["sessions"] > (got[0]["next_count"] or 0)  # ties: retry
            label = f"pruned ranking days={days} (same top 50 as today: {same}; bound: {exact})"
            statements = [(PRUNED_RANKING_SQL, values)]
            await measure(self.conn, self.rows, "proposal", label, statements, None, 3)

    async def votes(self) -> None:
        print("vote batch (200 votes, hot-skewed builds, as VoteAggregator sends them)")
        for index, (sql, values) in enumerate(await capture_votes(self.conn, self.rng), 1):
            label = f"statement {index}: {first_line(sql)}"
            runs = max(3, RUNS // 10)
            await measure(
                self.conn,
                self.rows,
                "vote batch",
                label,
                [(sql, values)],
                None,
                runs,
                rollback=True,
            )

    async def search_flush(self) -> None:
        print("search flush (10k events, as SearchAggregator sends them)")
        for index, (sql, values) in enumerate(await capture_search_flush(self.conn, self.rng), 1):
            label = f"statement {index}: {first_line(sql)}"
            runs = max(3, RUNS // 20)
            await measure(
                self.conn,
                self.rows,
                "search flush",
                label,
                [(sql, values)],
                None,
                runs,
                rollback=True,
            )

    async def admin(self) -> None:
        await plans_admin.plans(self.conn, self.recorder, self.rows, RUNS)


GROUPS = (
    "list",
    "one",
    "popular_builds",
    "popular_queries",
    "proposal",
    "votes",
    "search_flush",
    "admin",
)


async def run_all(conn: asyncpg.Connection) -> list[Row]:
    """Every group, or those named in PLANS_GROUPS (comma-separated)."""
    chosen = [g.strip() for g in os.environ.get("PLANS_GROUPS", ",".join(GROUPS)).split(",")]
    plans = Plans(conn)
    for group in chosen:
        await getattr(plans, group)()
    return plans.rows


PROPOSALS = """\
## What the plans say, and the fixes proposed

* **Index added** — `builds_visibility_idx (is_public, is_template)`, migration
  `1_*_builds_visibility_idx.py` (models unchanged; MODELS_STATE copied). The exact
  `COUNT(*)` behind `total` for the unfiltered list and for `is_template=` reads this small
  (deduplicated) index instead of `builds_newest_idx` or the whole table (`is_template=false`
  was a seq scan). Measured on this data: 13-19 ms -> ~7 ms per count.
* **List: the page is never the problem, the count is.** Every page query is an index scan
  (backward on the sort's index) in well under 1 ms; the `SELECT COUNT(*)` for `total` is
  linear in the matching rows (~0.1 µs/row index-only, more through a bitmap heap scan for
  `search=`). Broad searches (a word in 1/7 of descriptions, or a class name in 6% of names)
  are where p99 goes over 20 ms; their count plan also flips between a BitmapOr of the
  trigram indexes and a (parallel) seq scan with the statistics sample (ILIKE '%x%'
  estimates are rough), 20-70 ms either way at 100k builds. Proposed (not done here:
  service/builds/queries.py): keep an exact count but cache `total` per normalised filter in
  Valkey for ~30 s, or cap it (`SELECT count(*) FROM (SELECT 1 ... LIMIT 10001)`, contract:
  "10000+"); skip the page query when `offset >= total`.
* **Deep pages** walk OFFSET rows through the index and the heap (page 1000 x 20 = 20k rows,
  tens of ms) and `page` may go to 2^31-1. Proposed: cap `page * limit` (e.g. 10k) or keyset
  pagination (cursor = last `(created_at, build_id)`), or a deferred join (`build_id`s from
  an index-only scan, then the 20 rows).
* **Popular builds by period** (day/week/month) aggregate every vote of the window per
  request: index-only scan of `build_votes_period_idx` + hash aggregate + hash join with all
  public builds (seq scan), 55-500 ms across runs, uncached. No index removes the
  aggregation. Proposed: serve it like popular queries (Valkey top-20 per (period,
  include_templates), rebuilt at most every 60 s, single flight), or keep hourly per-build
  vote tallies in the vote transaction; cheap interim: rank `build_votes` alone and join only
  the top candidates (`ORDER BY period_sum DESC, period_votes DESC FETCH FIRST 100 ROWS WITH
  TIES`).
* **Popular-queries ranking** is the expensive statement of the service: across runs on this
  box 0.25-0.5 s for 1 day, 2-4 s for 7 days (the default view), 5-11 s for 30 days, 14-24 s
  for 90 days (the pool's command_timeout is 30 s). It runs on every Valkey miss (TTL 60 s)
  in *every* worker (single flight is per worker) and on every request while Valkey is down
  (see the Valkey drill). Depending on the statistics sample the plan probes
  `search_rollup_sessions` by key for every rollup key of the window or hashes the whole
  table (seq scan, ~300 MB); either way it counts distinct sessions for every query in the
  window. Proposed (aggregators/popular.py): (1) the pruned ranking measured above —
  distinct sessions only for the 200 queries with the most searches, exact while the 201st
  count is below the 50th sessions (else retry with more) — same top 50, 3-5x faster for 1
  and 7 days, but 90 days stays in the seconds: long windows need (3); (2) a cluster-wide
  single flight (Valkey `SET NX` lock) and serving the previous set while it rebuilds (a
  longer TTL plus a rebuild-after age) instead of letting it expire; (3) a daily rollup
  (day, query, mode, count) written by the same flush transaction so long windows read ~24x
  fewer rows; (4) the Valkey-down fallback reading a small snapshot table written by the
  rebuild instead of recomputing.
* **Vote batch**: one statement: lock by primary key, insert through the unique index, add
  the inserted sums to the locked rows (DESIGN rule 5) — O(batch), whatever a build's vote
  count; recounts run in `python -m service reconcile-tallies` and the periodic check.
* **Search flush** (10k events): flush_log insert + one rollup/session upsert, index lookups
  only; tens of ms per 10k events.
"""


def render(rows: list[Row], counts: dict[str, int], settings: dict[str, str]) -> str:
    lists = [r for r in rows if r["group"] == "list"]
    worst = max(lists, key=lambda r: r["p99"]) if lists else None
    over = [r["label"] for r in lists if not r["p99"] < TARGET_MS]
    lines = [
        f"# Query plans — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "`make plans` (bench/plans.py): the exact SQL the service runs (captured from Tortoise "
        "as executed, or from the aggregators run against a recording connection inside a "
        "rolled-back transaction), EXPLAIN (ANALYZE, BUFFERS), then timed over repeated runs "
        f"on one connection. Data: {counts}. Postgres {settings['server_version']}, "
        f"shared_buffers {settings['shared_buffers']}, work_mem {settings['work_mem']}; "
        f"{os.cpu_count()} cores shared with other work (load average {settings['load']}), so "
        "read percentiles as orders of magnitude. List timings are the whole "
        "`build_queries.list_builds()` call (count + page through Tortoise), "
        f"target p99 < {TARGET_MS:.0f} ms; `exec ms` is EXPLAIN ANALYZE per statement "
        "(count + page for lists).",
        "",
    ]
    if worst is not None:
        lines += [
            f"**List:** {len(lists)} cases, worst p99 {worst['p99']:.1f} ms ({worst['label']}); "
            f"over {TARGET_MS:.0f} ms: {', '.join(over) or 'none'}. Seq scans anywhere: "
            f"{', '.join(r['group'] + ': ' + r['label'] for r in rows if r['seq']) or 'none'}.",
            "",
        ]
    lines += plans_admin.summary_line(rows)
    lines += [
        "| group | query | scans (per statement) | exec ms | p50 ms | p99 ms | runs | verdict |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        verdict = []
        if r["seq"]:
            verdict.append("seq scan")
        if r["group"] == "list" and not r["p99"] < TARGET_MS:
            verdict.append(f"p99 >= {TARGET_MS:.0f} ms")
        rebuild = "rebuild" in r["label"]
        if r["group"].startswith("admin") and not rebuild and not r["p99"] <= plans_admin.TARGET_MS:
            verdict.append(f"p99 > {plans_admin.TARGET_MS:.0f} ms")
        scans = "<br>".join(r["scans"]).replace("|", "\\|")
        exec_ms = " + ".join(f"{ms:.2f}" for ms in r["exec_each"])
        lines.append(
            f"| {r['group']} | {r['label']} | {scans} | {exec_ms} | {r['p50']:.2f} | "
            f"{r['p99']:.2f} | {r['runs']} | {', '.join(verdict) or 'ok'} |"
        )
    lines += ["", PROPOSALS, "## Plans", ""]
    for r in rows:
        lines += [f"<details><summary>{r['group']}: {r['label']}</summary>", "", "```"]
        lines += r["plans"]
        lines += ["```", "", "</details>", ""]
    return "\n".join(lines) + "\n"


async def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    url = os.environ.get("PLANS_DATABASE_URL")
    pg = None
    if not url:
        from service.runtime import embedded

        pg, url = await asyncio.to_thread(
            embedded.start_postgres, ROOT / ".data" / "pg", "myashes_plans"
        )
    try:
        await db.migrate(url)
        conn = await asyncpg.connect(url)
        try:
            await seed(conn)
            counts = {
                t: await conn.fetchval(f"SELECT count(*) FROM {t}")
                for t in (
                    "builds",
                    "build_votes",
                    "search_events",
                    "search_rollups",
                    "search_rollup_sessions",
                    "feedback",
                    "feedback_rollups",
                )
            }
            settings = {
                k: await conn.fetchval(f"SHOW {k}")
                for k in ("server_version", "shared_buffers", "work_mem")
            }
            before = os.getloadavg()[0]
            await db.open_orm(url, pool_min=1, pool_max=2)
            try:
                rows = await run_all(conn)
            finally:
                await db.close_orm()
            settings["load"] = f"{before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        finally:
            await conn.close()
    finally:
        if pg is not None:
            await asyncio.to_thread(pg.cleanup)
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / os.environ.get("PLANS_OUTPUT", "plans.md")
    output.write_text(render(rows, counts, settings))
    slow = [r["label"] for r in rows if r["group"] == "list" and not r["p99"] < TARGET_MS]
    seq = [f"{r['group']}: {r['label']}" for r in rows if r["seq"]]
    print(
        f"\nwrote {output}; list queries over {TARGET_MS:.0f} ms p99: {slow}; "
        f"with a seq scan: {seq}"
    )


if __name__ == "__main__":
    asyncio.run(main())
