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
