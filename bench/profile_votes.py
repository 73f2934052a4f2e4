"""`python -m bench.profile_votes`: where a vote's time goes in the worker (issue 13).

Runs the server with 1 worker (rate limits off) on the given stores (DATABASE_URL/VALKEY_URL:
point them at a scratch database, its tables are TRUNCATEd), wrk voting with fresh sessions
over the 2000 seeded builds (or on one build: PROFILE_BUILD=hot, with BENCH_HOT_VOTES seeded),
and py-spy sampling the worker (PROFILE_RATE Hz, PROFILE_SECONDS, idle samples included).
Prints the share of samples spent idle (waiting on the event loop) and the inclusive share of
the functions of the vote path, plus the vote aggregator's batch size and batch duration from
/metrics. The raw py-spy output is written to bench/results/profile_votes.tmp.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import stores  # noqa: E402
from bench.run import IDS_FILE, LUA, RESULTS, find_wrk  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

SECONDS = int(os.environ.get("PROFILE_SECONDS", "10"))
RATE = int(os.environ.get("PROFILE_RATE", "200"))
HOT = os.environ.get("PROFILE_BUILD") == "hot"
# Inclusive shares worth reading for the vote path (function name, file name).
WATCH = (
    ("vote", "votes.py"),
    ("submit", "votes.py"),
    ("_lane", "votes.py"),
    ("_write", "votes.py"),
    ("_answer", "votes.py"),
    ("project_tallies", "votes.py"),
    ("fetch", "connection.py"),
    ("decode_body", "validation.py"),
    ("json_response", "responses.py"),
    ("handle_request", "handle_request"),
    ("connection_task", "connection_task"),
)


def summarise(raw: Path) -> list[str]:
    total = 0
    idle = 0
    inclusive: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        if frames[-1].startswith(("select (", "_run_server_forever (")):
            idle += n
        seen = set()
        for frame in frames:
            match = re.match(r"(\S+) \(([^:)]+)", frame)
            if match:
                seen.add((match[1], Path(match[2]).name))
        for key in seen:
            inclusive[key] += n
    lines = [f"samples {total}; idle (event loop waiting) {idle / total:.1%}"]
    for name, file in WATCH:
        lines.append(f"  {inclusive[(name, file)] / total:6.1%}  {name} ({file})")
    return lines


def main() -> None:
    wrk = find_wrk()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / "profile_votes.tmp"
    with stores.prepared(IDS_FILE) as (db_url, valkey_url):
        asyncio.run(stores.reset(db_url, IDS_FILE, valkey_url))
        if HOT:
            print(f"hot build: {asyncio.run(stores.seed_hot_build(db_url)):,} votes seeded")
        server = ServerProcess(db_url, valkey_url, workers=1, LOG_LEVEL="WARNING").start()
        try:
            (worker,) = server.worker_pids()
            script = "vote_one.lua" if HOT else "vote.lua"
            cmd = [wrk, "-t2", "-c64", f"-d{SECONDS + 4}s", "--latency", "-s", str(LUA / script)]
            env = {**os.environ, "BENCH_IDS": str(IDS_FILE), "BENCH_BUILD": stores.HOT_BUILD}
            out: list[str] = []
            load = threading.Thread(
                target=lambda: out.append(
                    subprocess.run(
                        [*cmd, server.base_url + "/"], env=env, capture_output=True, text=True
                    ).stdout
                )
            )
            load.start()
            threading.Event().wait(2)  # past wrk's connection set-up
            record = ["record", "--pid", str(worker), "--rate", str(RATE), "--idle"]
            subprocess.run(
                [py_spy, *record, "--duration", str(SECONDS), "--format", "raw", "-o", str(raw)],
                check=True,
                capture_output=True,
            )
            load.join()
            metrics = subprocess.run(
                ["curl", "-s", server.base_url + "/metrics"], capture_output=True, text=True
            ).stdout
        finally:
            server.terminate()
            server.wait(60)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out[0])
    p99 = re.search(r"^\s+99%\s+(\S+)", out[0], re.M)
    print(f"wrk: {rps[1] if rps else '?'} votes/s, p99 {p99[1] if p99 else '?'}")

    def value(name: str) -> float:
        found = re.search(rf'^{name}{{aggregator="votes"}} (\S+)', metrics, re.M)
        return float(found[1]) if found else 0.0

    batches = value("myashes_aggregator_flush_duration_seconds_count")
    if batches:
        flushed = value("myashes_aggregator_events_flushed_total")
        seconds = value("myashes_aggregator_flush_duration_seconds_sum")
        print(
            f"vote batches: {batches:.0f}, {flushed / batches:.1f} votes each, "
            f"{seconds / batches * 1000:.1f} ms each (statement + answers)"
        )
    print("\n".join(summarise(raw)))


if __name__ == "__main__":
    main()
