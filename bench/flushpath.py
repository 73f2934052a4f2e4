"""The flush path alone (events/s into Postgres, statements per 10k) and full-buffer RSS."""

from __future__ import annotations

import random
import re
import subprocess
import time
from pathlib import Path

import httpx

from aggregators.normalise import normalise_query
from aggregators.search import SearchAggregator, SearchEvent
from service.runtime import db
from tests.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
FLUSH_EVENTS = 200_000
WORDS = [
    "tank",
    "build",
    "healer",
    "paladin",
    "mage",
    "pvp",
    "guide",
    "best",
    "ranger",
    "node",
    "siege",
    "bard",
    "cleric",
    "caravan",
    "castle",
    "dungeon",
    "raid",
    "gear",
    "leveling",
]


def realistic_events(n: int, now: float) -> list[SearchEvent]:
    """Zipf-ish popular queries, sessions that search a few times each."""
    rng = random.Random(7)
    queries = [" ".join(rng.sample(WORDS, rng.randint(1, 4))) for _ in range(5000)]
    weights = [1 / (rank + 1) for rank in range(len(queries))]
    picked = rng.choices(queries, weights=weights, k=n)
    events = []
    for i, query in enumerate(picked):
        session = f"sess_{rng.randrange(n // 4):024x}"
        mode = rng.choice(("quick", "quick", "smart", "deep"))
        events.append(SearchEvent(query, normalise_query(query), mode, i % 30, session, now))
    return events


async def measure(database_url: str) -> dict[str, float]:
    client = await db.open_orm(database_url, pool_min=1, pool_max=2)
    try:
        aggregator = SearchAggregator(
            client, interval_s=3600, max_events=FLUSH_EVENTS, max_bytes=2**31
        )
        for event in realistic_events(FLUSH_EVENTS, time.time()):
            aggregator.record(event)
        started = time.perf_counter()
        written = await aggregator.flush()
        elapsed = time.perf_counter() - started
    finally:
        await db.close_orm()
    return {
        "events": float(written),
        "events_per_s": written / elapsed,
        "statements_per_10k": aggregator.statements * 10_000 / written,
    }


WAL_BATCHES = (1, 2, 20, 200)  # events per worker flush = its traffic in one FLUSH_INTERVAL_S
WAL_EVENTS = 4000  # per batch size
GROWTH_TABLES = ("search_events", "search_rollups", "search_rollup_sessions", "flush_log")


async def wal_per_event(database_url: str) -> dict[int, dict[str, float]]:
    """WAL bytes, new rows and table bytes per search event, by events per flush.

    A worker flushes once per FLUSH_INTERVAL_S whatever it holds, so the batch size is the
    traffic per worker per second; the rollup upserts amortise over repeated queries in a
    batch. The tables must start empty-ish (a scratch database): growth is what is read."""
    import asyncpg

    client = await db.open_orm(database_url, pool_min=1, pool_max=2)
    conn = await asyncpg.connect(database_url)
    out: dict[int, dict[str, float]] = {}
    try:
        for batch in WAL_BATCHES:

            async def sizes() -> tuple[int, int]:
                rows = sum(
                    [int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in GROWTH_TABLES]
                )
                size = int(
                    await conn.fetchval(
                        "SELECT sum(pg_total_relation_size(c)) FROM unnest($1::regclass[]) c",
                        list(GROWTH_TABLES),
                    )
                )
                return rows, size

            rows0, size0 = await sizes()
            lsn0 = await conn.fetchval("SELECT pg_current_wal_lsn()")
            aggregator = SearchAggregator(
                client, interval_s=3600, max_events=batch, max_bytes=2**31
            )
            events = realistic_events(WAL_EVENTS, time.time())
            for start in range(0, WAL_EVENTS, batch):
                for event in events[start : start + batch]:
                    aggregator.record(event)
                await aggregator.flush()
            wal = await conn.fetchval(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)", lsn0
            )
            rows1, size1 = await sizes()
            out[batch] = {
                "wal_bytes_per_event": float(wal) / WAL_EVENTS,
                "rows_per_event": (rows1 - rows0) / WAL_EVENTS,
                "table_bytes_per_event": (size1 - size0) / WAL_EVENTS,
                "statements_per_flush": aggregator.statements * batch / WAL_EVENTS,
            }
    finally:
        await conn.close()
        await db.close_orm()
    return out


def wal_in_own_cluster() -> dict[int, dict[str, float]]:
    """wal_per_event() on a PostgreSQL of its own (embedded, under .data/bench-wal): the WAL
    position is cluster-wide, so a shared server's other traffic would be counted too. One
    warm-up round first (after it, pages are no longer written in full on first touch)."""
    import asyncio
    import shutil

    from service.runtime import embedded

    data = ROOT / ".data" / "bench-wal"
    shutil.rmtree(data, ignore_errors=True)
    server, url = embedded.start_postgres(data / "pg", "wal")
    try:
        asyncio.run(db.migrate(url))
        asyncio.run(wal_per_event(url))
        return asyncio.run(wal_per_event(url))
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def full_buffer_rss(valkey_url: str) -> dict[str, float]:
    """One worker, Postgres unreachable: fill the analytics buffer until it answers 503
    (near-maximal queries, so the byte cap is what binds), then read the worker's RSS."""
    server = ServerProcess(
        "postgresql://postgres@127.0.0.1:1/unreachable",
        valkey_url,
        workers=1,
        FLUSH_INTERVAL_S="3600",
        LOG_LEVEL="ERROR",
        ENV="test",  # development would migrate the (unreachable) database before serving
    )
    server.start(ready_path="/health/live")
    try:
        buffered, rejected = 0, 0
        for _ in range(12):  # bounded: 12 x 5 s
            out = subprocess.run(
                [
                    "wrk",
                    "-t2",
                    "-c32",
                    "-d5s",
                    "-s",
                    str(ROOT / "bench" / "lua" / "post_search_long.lua"),
                    server.base_url + "/",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rejected = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
            if rejected:
                break
        health = httpx.get(server.base_url + "/health", timeout=10).json()
        buffered = health["checks"]["aggregators"]["buffered"]
        assert server.process is not None
        out = subprocess.run(
            ["ps", "--ppid", str(server.process.pid), "-o", "rss=,args="],
            capture_output=True,
            text=True,
        ).stdout
        rss = max(int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line)
    finally:
        server.kill()
    return {
        "full_buffer_events": buffered,
        "full_buffer_rejected": rejected,
        "full_buffer_rss_mb": round(rss / 1024, 1),
    }
