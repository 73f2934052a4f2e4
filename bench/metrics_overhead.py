"""`make bench` part 2 (or `python -m bench.metrics_overhead`): what observability costs on the
hottest write, POST /api/v1/analytics/search (issue 5: at most 10 % loss with metrics on).

Three servers run side by side on the same stores: METRICS_ENABLED=false, =true, and =true
with the access log on (LOG_LEVEL=INFO: one JSON line per request; the other two run at
WARNING like `make bench`). wrk visits them in turn, BENCH_ROUNDS rounds of BENCH_DURATION
seconds, rotating the order, so load from anything else on the machine hits all three alike.
Reported per configuration: median req/s, and median worker CPU time per request (utime +
stime of the worker processes from /proc over the run / requests served), which other load
on a shared machine disturbs far less than throughput. BENCH_WORKERS (default 1) workers per
server. Writes bench/results/metrics_overhead.md and .json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import stores  # noqa: E402
from bench.run import CONNECTIONS, IDS_FILE, RESULTS, find_wrk, run_wrk  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

DURATION = int(os.environ.get("BENCH_DURATION", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
OFF, ON, LOGGED = "metrics off", "metrics on", "metrics on + access log"
CONFIGS = {
    OFF: {"METRICS_ENABLED": "false", "LOG_LEVEL": "WARNING"},
    ON: {"METRICS_ENABLED": "true", "LOG_LEVEL": "WARNING"},
    LOGGED: {"METRICS_ENABLED": "true", "LOG_LEVEL": "INFO"},
}
SCRIPT = "post_search.lua"
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def workers_of(server: ServerProcess) -> list[int]:
    """Pids of the server's Sanic workers (spawned children of the main process)."""
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    pids = [int(p) for p in children.read_text().split()]
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total * TICK_S


Samples = dict[str, list[tuple[float, float]]]  # configuration -> [(req/s, CPU us/request)]


def measure(wrk: str, db_url: str, valkey_url: str) -> Samples:
    servers: dict[str, ServerProcess] = {}
    samples: Samples = {name: [] for name in CONFIGS}
    try:
        for name, env in CONFIGS.items():
            servers[name] = ServerProcess(
                db_url, valkey_url, workers=WORKERS, FLUSH_INTERVAL_S="1", **env
            ).start()
        for server in servers.values():
            run_wrk(wrk, server.base_url + "/", SCRIPT, 2)  # warm-up
        names = list(CONFIGS)
        for round_no in range(ROUNDS):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                url = servers[name].base_url + "/"
                pids = workers_of(servers[name])
                cpu_before = cpu_s(pids)
                value, p50, p99, errors = run_wrk(wrk, url, SCRIPT, DURATION)
                cpu_us = (cpu_s(pids) - cpu_before) / (value * DURATION) * 1e6
                samples[name].append((value, cpu_us))
                print(
                    f"  round {round_no + 1} {name:24s} {value:9.0f} req/s  {cpu_us:6.1f} us CPU"
                    f"/req  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  errors {errors}",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.terminate()
        for server in servers.values():
            server.wait(60)
    return samples


def medians(samples: Samples) -> dict[str, tuple[float, float]]:
    return {
        name: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v))
        for name, v in samples.items()
    }


def render(samples: Samples) -> str:
    mid = medians(samples)
    base_rps, base_cpu = mid[OFF]
    lines = [
        "# Observability overhead — POST /api/v1/analytics/search",
        "",
        f"wrk -t2 -c{CONNECTIONS} -d{DURATION}s, {ROUNDS} rounds in rotating order, {WORKERS} "
        f"worker(s) per server, {os.cpu_count()} cores; three servers side by side in one run "
        "(`python -m bench.metrics_overhead`).",
        "",
        "| configuration | median req/s | vs off | median CPU us/request | throughput from CPU,"
        " vs off | req/s of every round |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, values in samples.items():
        rps, cpu = mid[name]
        rounds = ", ".join(f"{r:,.0f}" for r, _ in values)
        lines.append(
            f"| {name} | {rps:,.0f} | {rps / base_rps:.1%} | {cpu:.1f} | {base_cpu / cpu:.1%} "
            f"| {rounds} |"
        )
    lines += [
        "",
        "Throughput from CPU = CPU per request with metrics off / with this configuration: the",
        "req/s a CPU-bound worker keeps, unaffected by other load on the machine.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    wrk = find_wrk()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with stores.prepared(IDS_FILE) as (db_url, valkey_url):
        asyncio.run(stores.reset(db_url, IDS_FILE, valkey_url))
        samples = measure(wrk, db_url, valkey_url)
    text = render(samples)
    (RESULTS / "metrics_overhead.md").write_text(text)
    mid = medians(samples)
    (RESULTS / "metrics_overhead.json").write_text(
        json.dumps(
            {
                "samples_rps_cpu_us": samples,
                "median_rps": {name: m[0] for name, m in mid.items()},
                "median_cpu_us_per_request": {name: m[1] for name, m in mid.items()},
                "rps_on_to_off": mid[ON][0] / mid[OFF][0],
                "cpu_off_to_on": mid[OFF][1] / mid[ON][1],
                "cpu_off_to_logged": mid[OFF][1] / mid[LOGGED][1],
                "duration_s": DURATION,
                "rounds": ROUNDS,
                "workers": WORKERS,
                "connections": CONNECTIONS,
            },
            indent=2,
        )
    )
    print()
    print(text)


if __name__ == "__main__":
    main()
