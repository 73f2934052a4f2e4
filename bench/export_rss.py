"""CSV export memory: RSS of the serving worker while GET /admin/feedback/export.csv streams
every feedback row (target: grows < 20 MB for 1M rows). Writes bench/results/export_rss.md.
Then every admin read through HTTP on the same server (EXPORT_REQUESTS each, sequential, the
Valkey copies warm as in production): p50/p99 in bench/results/admin_endpoints.md.

Database: EXPORT_DATABASE_URL, else the embedded cluster of `make plans` (.data/pg, database
myashes_plans, seeded by it with PLANS_FEEDBACK rows); Valkey: EXPORT_VALKEY_URL, else an
embedded one. One worker, a token of the local issuer (`python -m service token`), the RSS of
the worker process sampled every 20 ms from /proc while a client reads the stream.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server import ServerProcess  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_MB = 20.0
REQUESTS = int(os.environ.get("EXPORT_REQUESTS", 200))
ENDPOINTS = [
    "/api/v1/admin/feedback",
    "/api/v1/admin/feedback?status=new&rating=down",
    "/api/v1/admin/feedback?q=caravan%20castle",
    "/api/v1/admin/feedback/summary?days=7",
    "/api/v1/admin/feedback/summary?days=365",
    "/api/v1/admin/feedback/patterns?days=7",
    "/api/v1/admin/feedback/patterns?days=90",
    "/api/v1/admin/feedback/patterns?days=365",
    "/api/v1/admin/insights/content-gaps?days=1",
    "/api/v1/admin/insights/content-gaps?days=7",
    "/api/v1/admin/insights/content-gaps?days=90",
]


def latencies(client: httpx.Client, auth: dict[str, str]) -> list[str]:
    """p50/p99 per endpoint; the first request (a cold copy is built) is reported apart."""
    lines = [
        "| endpoint | first request ms | p50 ms | p99 ms | requests |",
        "|---|---:|---:|---:|---:|",
    ]
    for path in ENDPOINTS:
        started = time.perf_counter()
        assert client.get(path, headers=auth).status_code == 200
        first = (time.perf_counter() - started) * 1000
        times = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            response = client.get(path, headers=auth)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
        times.sort()
        p50, p99 = times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]
        lines.append(f"| `{path}` | {first:.1f} | {p50:.2f} | {p99:.2f} | {REQUESTS} |")
        print(lines[-1], flush=True)
    return lines


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.samples, self.running = pid, 0, 0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_kb(self.pid))
            self.samples += 1
            time.sleep(0.02)


def main() -> None:
    database_url = os.environ.get("EXPORT_DATABASE_URL")
    valkey_url = os.environ.get("EXPORT_VALKEY_URL")
    pg = valkey = None
    from service.runtime import embedded

    if not database_url:
        pg, database_url = embedded.start_postgres(ROOT / ".data" / "pg", "myashes_plans")
    if not valkey_url:
        valkey, valkey_url = embedded.start_valkey(ROOT / ".data" / "valkey-export")
        valkey_url = valkey_url.replace("valkey://", "redis://")
    rows = asyncio.run(_count(database_url))
    data_dir = ROOT / ".data" / "export-bench"
    token = subprocess.run(
        [sys.executable, "-m", "service", "token", "--role", "admin"],
        env={**os.environ, "DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.strip()
    server = ServerProcess(database_url, valkey_url, workers=1, DATA_DIR=str(data_dir)).start()
    try:
        (pid,) = server.wait_workers_ready(1)
        with httpx.Client(base_url=server.base_url, timeout=600) as client:
            auth = {"Authorization": f"Bearer {token}"}
            warm = client.get("/api/v1/admin/feedback?limit=100", headers=auth)
            assert warm.status_code == 200, warm.text
            before = rss_kb(pid)
            sampler = Sampler(pid)
            sampler.start()
            started = time.perf_counter()
            size = lines = 0
            tail = b""  # a CRLF may straddle two chunks
            with client.stream("GET", "/api/v1/admin/feedback/export.csv", headers=auth) as r:
                assert r.status_code == 200
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    lines += (tail + chunk).count(b"\r\n")
                    tail = chunk[-1:]
            elapsed = time.perf_counter() - started
            sampler.running = False
            sampler.join()
            after = rss_kb(pid)
            endpoint_lines = latencies(client, auth)
    finally:
        server.kill()
        if valkey is not None:
            valkey.stop()
        if pg is not None:
            pg.cleanup()
    growth_mb = (sampler.peak - before) / 1024
    report = [
        f"# CSV export memory — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "`python -m bench.export_rss`: one worker streams GET /api/v1/admin/feedback/export.csv "
        "(server-side cursor, 1000-row chunks) to a client that discards it; the worker's RSS "
        f"sampled every 20 ms ({sampler.samples} samples).",
        "",
        "| feedback rows | CSV lines (with header) | MB sent | seconds | RSS before MB | "
        "RSS peak MB | RSS after MB | growth MB | target |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {rows} | {lines} | {size / 1e6:.1f} | {elapsed:.1f} | {before / 1024:.1f} | "
        f"{sampler.peak / 1024:.1f} | {after / 1024:.1f} | {growth_mb:.1f} | "
        f"{'ok' if growth_mb < TARGET_MB else 'OVER'} (< {TARGET_MB:.0f} MB) |",
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "export_rss.md").write_text("\n".join(report))
    print("\n".join(report))
    (RESULTS / "admin_endpoints.md").write_text(
        "\n".join(
            [
                f"# Admin endpoints through HTTP — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                "",
                f"`python -m bench.export_rss` (after `make plans`: {rows} feedback rows, the "
                "plans' search events): one worker, rate limits off, one client in sequence on "
                "127.0.0.1, the machine's 2 cores shared with other work. Patterns and content "
                "gaps come from their Valkey copies once built (the first request builds it).",
                "",
                *endpoint_lines,
                "",
            ]
        )
    )


async def _count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM feedback"))
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
