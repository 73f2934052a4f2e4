"""`python -m bench.scrape_cost`: what a Prometheus scrape and a readiness probe cost (issue 15).

One server (BENCH_WORKERS, default 2; /_bench/noop on, rate limits off) on the bench stores,
PostgreSQL and Valkey behind TCP proxies (tests/faults.py) that count the bytes reaching the
stores and can stall. Every latency sits next to GET /_bench/noop of the same server, timed
in turn with it:
1. idle: SAMPLES requests of each path one at a time: latency, worker CPU per request (minus
   the workers' CPU in an equally long window without requests) and bytes sent to each store
   per request (minus that window's background traffic);
2. under load: wrk POSTs searches for BENCH_DURATION s while /metrics, /health/ready and the
   no-op are requested in turn (one round every 0.1 s): p50/p99 of each;
3. PostgreSQL stalled (its proxy forwards nothing, connections stay open): STALL_SAMPLES of
   each path.
Runs against any checkout of the service (it only needs tests/server.py and the bench
helpers), so the same script measures before and after a change. Writes
bench/results/scrape_cost.md and .json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import stores  # noqa: E402
from bench.metrics_overhead import cpu_s, workers_of  # noqa: E402
from bench.run import IDS_FILE, RESULTS, find_wrk, run_wrk  # noqa: E402
from service.runtime.db import credentials  # noqa: E402
from tests.faults import TcpProxy  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

DURATION = int(os.environ.get("BENCH_DURATION", "10"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "200"))
STALL_SAMPLES = int(os.environ.get("BENCH_STALL_SAMPLES", "10"))
PATHS = ("/metrics", "/health/ready", "/_bench/noop")


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "n": len(ordered),
    }


async def timed(client: httpx.AsyncClient, path: str) -> float:
    start = time.perf_counter()
    r = await client.get(path)
    elapsed = time.perf_counter() - start
    assert r.status_code in (200, 503), (path, r.status_code, r.text[:200])
    return elapsed


async def idle(
    client: httpx.AsyncClient, server: ServerProcess, proxies: dict[str, TcpProxy]
) -> dict[str, Any]:
    pids = workers_of(server)
    out: dict[str, Any] = {}
    for path in PATHS:
        cpu, sent, started = cpu_s(pids), {k: p.sent for k, p in proxies.items()}, time.monotonic()
        latencies = [await timed(client, path) for _ in range(SAMPLES)]
        busy_s, used = time.monotonic() - started, cpu_s(pids) - cpu
        bytes_sent = {k: p.sent - sent[k] for k, p in proxies.items()}
        # The same stretch of time without requests: background work (checks, flush loops).
        cpu, sent = cpu_s(pids), {k: p.sent for k, p in proxies.items()}
        await asyncio.sleep(busy_s)
        background = cpu_s(pids) - cpu
        out[path] = {
            **summary(latencies),
            "cpu_ms_per_request": max(0.0, used - background) / SAMPLES * 1000,
            **{
                f"{k}_bytes_per_request": max(0, bytes_sent[k] - (p.sent - sent[k])) / SAMPLES
                for k, p in proxies.items()
            },
        }
    return out


async def under_load(client: httpx.AsyncClient, server: ServerProcess, wrk: str) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {path: [] for path in PATHS}
    load = asyncio.create_task(
        asyncio.to_thread(run_wrk, wrk, server.base_url + "/", "post_search.lua", DURATION)
    )
    await asyncio.sleep(1)  # wrk at full speed
    while not load.done():
        for path in PATHS:
            latencies[path].append(await timed(client, path))
        await asyncio.sleep(0.1)
    rps, _, _, errors = await load
    return {"wrk_rps": rps, "wrk_errors": errors, **{p: summary(v) for p, v in latencies.items()}}


async def stalled(client: httpx.AsyncClient, postgres: TcpProxy) -> dict[str, Any]:
    postgres.stall()
    try:
        latencies = {p: [await timed(client, p) for _ in range(STALL_SAMPLES)] for p in PATHS}
    finally:
        postgres.restore()
    return {p: summary(v) for p, v in latencies.items()}


async def measure(db_url: str, valkey_url: str, wrk: str) -> dict[str, Any]:
    creds = credentials(db_url)
    proxies = {
        "postgres": TcpProxy.for_postgres(creds),
        "valkey": TcpProxy.for_valkey(valkey_url),
    }
    for proxy in proxies.values():
        await proxy.start()
    valkey_db = valkey_url.rsplit("/", 1)[-1]
    server = ServerProcess(
        f"postgresql://{creds['user']}@127.0.0.1:{proxies['postgres'].port}/{creds['database']}",
        f"redis://127.0.0.1:{proxies['valkey'].port}/{valkey_db}",
        workers=WORKERS,
        FLUSH_INTERVAL_S="1",
        BENCH_ENDPOINTS="true",
    )
    await asyncio.to_thread(server.start)  # the proxies serve the server's start meanwhile
    try:
        await asyncio.to_thread(server.wait_workers_ready, WORKERS, 60.0)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            for path in PATHS:  # warm-up: pools open, first scrape done
                for _ in range(20):
                    await timed(client, path)
            results = {"idle": await idle(client, server, proxies)}
            results["load"] = await under_load(client, server, wrk)
            results["postgres_stalled"] = await stalled(client, proxies["postgres"])
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 60)
        for proxy in proxies.values():
            await proxy.stop()
    return results


def render(results: dict[str, Any]) -> str:
    idle, load, stall = results["idle"], results["load"], results["postgres_stalled"]
    noop = load["/_bench/noop"]["p50_ms"]
    lines = [
        "# Scrape and probe cost — GET /metrics, GET /health/ready",
        "",
        f"{WORKERS} workers, {os.cpu_count()} cores; stores behind counting TCP proxies; "
        f"under load: wrk POST /api/v1/analytics/search for {DURATION} s "
        f"({load['wrk_rps']:,.0f} req/s, {load['wrk_errors']} errors) "
        "(`python -m bench.scrape_cost`).",
        "",
        "| measurement | " + " | ".join(PATHS) + " |",
        "|---|" + "---:|" * len(PATHS),
    ]

    def row(name: str, cell: Any) -> None:
        lines.append(f"| {name} | " + " | ".join(cell(p) for p in PATHS) + " |")

    row("idle p50 / p99 ms", lambda p: f"{idle[p]['p50_ms']:.2f} / {idle[p]['p99_ms']:.2f}")
    row("idle worker CPU ms per request", lambda p: f"{idle[p]['cpu_ms_per_request']:.2f}")
    row(
        "idle bytes to PostgreSQL / Valkey per request",
        lambda p: (
            f"{idle[p]['postgres_bytes_per_request']:.0f} / "
            f"{idle[p]['valkey_bytes_per_request']:.0f}"
        ),
    )
    row("under load p50 / p99 ms", lambda p: f"{load[p]['p50_ms']:.2f} / {load[p]['p99_ms']:.2f}")
    row("under load p50 vs no-op", lambda p: f"{load[p]['p50_ms'] / noop:.1f}x")
    row(
        "PostgreSQL stalled p50 / p99 ms",
        lambda p: f"{stall[p]['p50_ms']:.1f} / {stall[p]['p99_ms']:.1f}",
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    wrk = find_wrk()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with stores.prepared(IDS_FILE) as (db_url, valkey_url):
        asyncio.run(stores.reset(db_url, IDS_FILE, valkey_url))
        results = asyncio.run(measure(db_url, valkey_url, wrk))
    text = render(results)
    (RESULTS / "scrape_cost.md").write_text(text)
    (RESULTS / "scrape_cost.json").write_text(json.dumps(results, indent=2))
    print(text)


if __name__ == "__main__":
    main()
