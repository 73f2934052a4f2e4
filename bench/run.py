"""`make bench`: the service under wrk on 127.0.0.1, every figure next to its ceiling.

Starts the stores (embedded unless DATABASE_URL/VALKEY_URL are set; with them set, the bench
TRUNCATEs the service's tables: point it at a scratch database), seeds builds, runs the
server with 1 and 2 workers (rate limits off, /_bench/noop on) and prints one table.
Writes bench/results/latest.md and latest.json. BENCH_DURATION (seconds, default 20) and
BENCH_CONNECTIONS (default 64) bound the run. The server verifies bearer tokens with the local
development issuer (DATA_DIR .data); one scenario sends tokens of 50 players, next to the same
request without one, and bench/auth_cost.py measures the verification cost per request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import auth_cost, flushpath, stores  # noqa: E402
from service.auth.local_issuer import LocalIssuer  # noqa: E402
from service.config import Settings  # noqa: E402
from tests.debian import debian_tool  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LUA = ROOT / "bench" / "lua"
DURATION = int(os.environ.get("BENCH_DURATION", "20"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
IDS_FILE = RESULTS / "ids.tmp"
TOKENS_FILE = RESULTS / "tokens.tmp"
DATA_DIR = ROOT / ".data"
BEARER = "POST /analytics/search + bearer token"
# Votes (issue 13): fresh sessions; over the 2000 seeded builds, on one build with no votes (a
# new one every slice), on one build with >= 1M votes seeded in SQL; POST /builds = one awaited
# INSERT per request, what group-committed votes must beat.
SPREAD = "vote: spread over 2000 builds"
NEW = "vote: new build (0 votes)"
HOT = f"vote: hot build ({stores.HOT_VOTES:,} votes)"
BUILDS = "POST /builds"
NOOP_POST = "no-op POST (ceiling)"
WORKER_COUNTS = [int(n) for n in os.environ.get("BENCH_WORKERS", "1,2").split(",")]


@dataclass
class Result:
    workers: int
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    ratio: float | None = None  # vs the matching no-op ceiling of the same run
    cpu_us: float | None = None  # worker CPU time per request (robust on a busy machine)


def find_wrk() -> str:
    wrk = debian_tool("wrk", "wrk")
    if wrk is None:
        raise SystemExit("wrk not found: install it (Debian: apt-get install wrk)")
    return wrk


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match, text
    return float(match[1]) * _UNITS[match[2]]


def run_wrk(
    wrk: str, url: str, script: str | None, duration: int, **env: str
) -> tuple[float, float, float, int]:
    cmd = [wrk, "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", str(LUA / script)]
    out = subprocess.run(
        cmd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_IDS": str(IDS_FILE), **env},
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return rps, p50, p99, errors


SCENARIOS = [
    # (name, path, lua script, ceiling it is compared with)
    ("no-op GET (ceiling)", "/_bench/noop", None, None),
    ("no-op POST (ceiling)", "/_bench/noop", "post_noop.lua", None),
    ("POST /analytics/search", "/", "post_search.lua", "no-op POST (ceiling)"),
    (BEARER, "/", "post_search.lua", "no-op POST (ceiling)"),
    (SPREAD, "/", "vote.lua", "no-op POST (ceiling)"),
    (NEW, "/", "vote_one.lua", "no-op POST (ceiling)"),
    (HOT, "/", "vote_one.lua", "no-op POST (ceiling)"),
    (BUILDS, "/", "post_build.lua", "no-op POST (ceiling)"),
    ("GET /builds/{id}", "/", "get_build.lua", "no-op GET (ceiling)"),
    (
        "GET /builds (page 1, filters)",
        "/api/v1/builds?page=1&limit=20&primary_archetype=tank&sort=rating",
        None,
        "no-op GET (ceiling)",
    ),
    (
        "GET /analytics/popular-queries",
        "/api/v1/analytics/popular-queries",
        None,
        "no-op GET (ceiling)",
    ),
]


# Extra environment of a scenario's wrk script (a callable: evaluated before each run).
SCENARIO_ENV: dict[str, dict[str, str] | Callable[[], dict[str, str]]] = {
    BEARER: {"BENCH_TOKENS": str(TOKENS_FILE)},
    HOT: {"BENCH_BUILD": stores.HOT_BUILD},
}
_new_builds = itertools.count()


def fresh_build_env(db_url: str) -> Callable[[], dict[str, str]]:
    """A new build with no votes for each run of the new-build scenario."""

    def env() -> dict[str, str]:
        build_id = f"b_f1{next(_new_builds):06x}"
        asyncio.run(stores.new_build(db_url, build_id, "Bench new build"))
        return {"BENCH_BUILD": build_id}

    return env


def write_tokens(players: int = 50) -> None:
    """Tokens of the local issuer the bench server uses (its key under DATA_DIR)."""
    issuer = LocalIssuer.of(Settings(data_dir=str(DATA_DIR)))
    tokens = [issuer.mint(f"steam:{n}", f"Bench {n}", ttl_s=3 * 3600) for n in range(players)]
    TOKENS_FILE.write_text("\n".join(tokens) + "\n")


def worker_cpu_s(server: ServerProcess) -> float:
    """CPU seconds (user + system) the Sanic workers have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in server.worker_pids():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def rss_mb(server: ServerProcess) -> list[float]:
    """RSS of each Sanic worker process, in MB (not the main or state-manager processes)."""
    sizes = []
    for pid in server.worker_pids():
        status = Path(f"/proc/{pid}/status").read_text()
        kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
        sizes.append(round(kib / 1024, 1))
    return sizes


def settle(server: ServerProcess, db_url: str) -> None:
    """Start each scenario on a quiet server: buffers flushed, tables analysed and vacuumed
    (the previous scenario's writes otherwise bill autovacuum to the next one)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = httpx.get(server.base_url + "/health", timeout=10).json()
        if health["checks"]["aggregators"]["buffered"] == 0:
            break
        time.sleep(0.2)
    asyncio.run(stores.vacuum(db_url))


# Scenarios compared with each other are measured in alternating slices (A B B A ...): on a
# shared machine the load moves between two back-to-back runs more than the difference.
GROUPS = {
    "POST /analytics/search": [BEARER],
    NOOP_POST: [SPREAD, BUILDS, NEW, HOT],
}
SLICES = 4


def measure(wrk: str, server: ServerProcess, workers: int, names: list[str]) -> dict[str, Result]:
    """Each named scenario for DURATION seconds in all (alternating slices for a pair)."""
    scenarios = {s[0]: s for s in SCENARIOS}
    slices = SLICES if len(names) > 1 else 1
    seconds = max(2, DURATION // slices)
    requests = dict.fromkeys(names, 0.0)
    cpu = dict.fromkeys(names, 0.0)
    latencies: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    errors = dict.fromkeys(names, 0)

    def url_script(name: str) -> tuple[str, str | None, dict[str, str]]:
        _, path, script, _ = scenarios[name]
        extra = SCENARIO_ENV.get(name, {})
        return server.base_url + path, script, extra() if callable(extra) else extra

    for name in names:
        url, script, extra = url_script(name)
        run_wrk(wrk, url, script, 2, **extra)  # warm-up
    for i in range(slices):
        for name in names if i % 2 == 0 else names[::-1]:
            url, script, extra = url_script(name)
            before = worker_cpu_s(server)
            rps, p50, p99, failed = run_wrk(wrk, url, script, seconds, **extra)
            cpu[name] += worker_cpu_s(server) - before
            requests[name] += rps * seconds
            latencies[name].append((p50, p99))
            errors[name] += failed
    results = {}
    for name in names:
        rps = requests[name] / (seconds * slices)
        p50 = statistics.median(p for p, _ in latencies[name])
        p99 = max(p for _, p in latencies[name])
        cpu_us = round(cpu[name] / max(1.0, requests[name]) * 1e6, 1)
        results[name] = Result(workers, name, rps, p50, p99, errors[name], cpu_us=cpu_us)
        print(
            f"  {workers}w {name:36s} {rps:9.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
            f"  errors {errors[name]}  cpu {cpu_us} µs/req",
            flush=True,
        )
    return results


def bench_workers(
    wrk: str, db_url: str, valkey_url: str, workers: int
) -> tuple[list[Result], list[float]]:
    env = {
        "BENCH_ENDPOINTS": "true",
        "FLUSH_INTERVAL_S": "1",
        "LOG_LEVEL": "WARNING",
        # The local development issuer verifies the scenario's tokens.
        "DATA_DIR": str(DATA_DIR),
        "AUTH_JWKS_URL": "",
        "AUTH_PUBLIC_KEY": "",
    }
    results: dict[str, Result] = {}
    SCENARIO_ENV[NEW] = fresh_build_env(db_url)
    server = ServerProcess(db_url, valkey_url, workers=workers, **env).start()
    try:
        for name, _, _, _ in SCENARIOS:
            if any(name in members for members in GROUPS.values()):
                continue  # measured with its group
            settle(server, db_url)
            results.update(measure(wrk, server, workers, [name, *GROUPS.get(name, [])]))
        rss = rss_mb(server)
    finally:
        server.terminate()
        server.wait(60)
    server = ServerProcess(
        db_url, valkey_url, workers=workers, ANALYTICS_WRITE_THROUGH="true", **env
    ).start()
    try:
        name = "POST /analytics/search write-through"
        run_wrk(wrk, server.base_url + "/", "post_search.lua", 2)
        rps, p50, p99, errors = run_wrk(wrk, server.base_url + "/", "post_search.lua", DURATION)
        results[name] = Result(workers, name, rps, p50, p99, errors)
        print(
            f"  {workers}w {name:36s} {rps:9.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
            f"  errors {errors}",
            flush=True,
        )
    finally:
        server.terminate()
        server.wait(60)
    for name, _, _, ceiling in SCENARIOS:
        if ceiling:
            results[name].ratio = results[name].rps / results[ceiling].rps
    results["POST /analytics/search write-through"].ratio = (
        results["POST /analytics/search write-through"].rps / results["no-op POST (ceiling)"].rps
    )
    return list(results.values()), rss


def vote_targets(results: list[Result], workers: int) -> dict[str, float]:
    """Issue 13's ratios, from scenarios measured in alternating slices of the same run."""
    by = {r.scenario: r for r in results if r.workers == workers}
    noop = by[NOOP_POST]
    return {
        "hot/new votes/s (>= 0.9)": by[HOT].rps / by[NEW].rps,
        "spread/no-op POST (>= 0.5)": by[SPREAD].rps / noop.rps,
        "spread/POST builds (>= 1.5)": by[SPREAD].rps / by[BUILDS].rps,
        "spread p99 / no-op POST p99 (<= 4)": by[SPREAD].p99_ms / noop.p99_ms,
        "hot p99 / no-op POST p99 (<= 4)": by[HOT].p99_ms / noop.p99_ms,
        "new p99 / no-op POST p99 (<= 4)": by[NEW].p99_ms / noop.p99_ms,
    }


def render(
    results: list[Result],
    rss: dict[int, list[float]],
    flush: dict[str, float],
    auth: dict[str, float],
    hot: dict[int, tuple[int, int]],
    wal: dict[int, dict[str, float]],
) -> str:
    lines = [
        f"# Benchmark — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"wrk -t2 -c{CONNECTIONS} -d{DURATION}s against 127.0.0.1; {os.cpu_count()} cores "
        f"({platform.machine()}), rate limits off. Ratio = req/s / the no-op ceiling of the "
        "same server in the same run (GET paths vs no-op GET, write paths vs no-op POST).",
        "",
        "| workers | scenario | req/s | p50 ms | p99 ms | errors | ratio to ceiling |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.ratio:.0%}" if r.ratio is not None else "—"
        lines.append(
            f"| {r.workers} | {r.scenario} | {r.rps:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.errors} | {ratio} |"
        )
    for workers in sorted(rss):
        by = {r.scenario: r for r in results if r.workers == workers}
        buffered, through = by["POST /analytics/search"], by["POST /analytics/search write-through"]
        lines.append("")
        lines.append(
            f"* {workers} worker(s): buffered analytics = {buffered.rps / through.rps:.1f}x "
            f"write-through; with a bearer token = {by[BEARER].rps / buffered.rps:.0%} of the "
            f"same request without one (worker CPU per request {by[BEARER].cpu_us} µs vs "
            f"{buffered.cpu_us} µs); RSS per worker after the run: {rss[workers]} MB"
        )
    for workers, (seeded, after) in sorted(hot.items()):
        targets = ", ".join(f"{k} = {v:.2f}" for k, v in vote_targets(results, workers).items())
        lines.append(
            f"* {workers} worker(s), votes (issue 13; {NOOP_POST}, {SPREAD}, {BUILDS}, {NEW}, "
            f"{HOT} in alternating slices): {targets}; the hot build had {seeded:,} votes "
            f"seeded in SQL and {after:,} after the run."
        )
    lines += [
        "",
        f"* Flush path alone (in-process, {flush['events']:,.0f} events, realistic mix): "
        f"{flush['events_per_s']:,.0f} events/s into Postgres, "
        f"{flush['statements_per_10k']:.1f} SQL statements per 10k events.",
        f"* RSS of one worker with a full analytics buffer (Postgres unreachable, 480-char "
        f"queries, {flush['full_buffer_events']:,.0f} events buffered, then "
        f"{flush['full_buffer_rejected']:,.0f} answered 503): {flush['full_buffer_rss_mb']} MB.",
        "* Growth per search event by events per worker flush (bench/flushpath.py "
        "wal_in_own_cluster, a PostgreSQL of its own, steady state): "
        + "; ".join(
            f"{batch}/flush: {w['wal_bytes_per_event']:.0f} B WAL, "
            f"{w['rows_per_event']:.2f} rows, {w['table_bytes_per_event']:.0f} B of tables, "
            f"{w['statements_per_flush']:.0f} statements per flush"
            for batch, w in wal.items()
        )
        + ".",
        f"* Bearer token verification per request (in-process, bench/auth_cost.py): "
        f"{auth['cached']:.1f} µs for a token seen before (every request after a token's "
        f"first in a worker); first sight {auth['first_EdDSA']:.0f} µs EdDSA, "
        f"{auth['first_ES256']:.0f} µs ES256, {auth['first_RS256']:.0f} µs RS256.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    wrk = find_wrk()
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_tokens()
    auth = asyncio.run(auth_cost.measure())
    with stores.prepared(IDS_FILE) as (db_url, valkey_url):
        flush = asyncio.run(flushpath.measure(db_url))
        flush.update(flushpath.full_buffer_rss(valkey_url))
        all_results: list[Result] = []
        rss: dict[int, list[float]] = {}
        hot: dict[int, tuple[int, int]] = {}  # the hot build's votes: seeded, after the run
        for workers in WORKER_COUNTS:
            print(f"{workers} worker(s):", flush=True)
            asyncio.run(stores.reset(db_url, IDS_FILE, valkey_url))
            seeded = asyncio.run(stores.seed_hot_build(db_url))
            results, rss[workers] = bench_workers(wrk, db_url, valkey_url, workers)
            hot[workers] = (seeded, asyncio.run(stores.vote_count(db_url, stores.HOT_BUILD)))
            all_results += results
    wal = flushpath.wal_in_own_cluster()
    text = render(all_results, rss, flush, auth, hot, wal)
    (RESULTS / "latest.md").write_text(text)
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {
                "results": [asdict(r) for r in all_results],
                "rss_mb": rss,
                "hot_build_votes": hot,
                "vote_targets": {w: vote_targets(all_results, w) for w in hot},
                "flush": flush,
                "auth_us": auth,
                "wal_per_event": wal,
                "duration_s": DURATION,
                "connections": CONNECTIONS,
            },
            indent=2,
        )
    )
    print()
    print(text)


if __name__ == "__main__":
    main()
