"""`python -m bench.drills [name ...]`: run the fault drills, print PASS/FAIL per drill and
write bench/results/drills.md (+ drills.json).

Drills: sigterm, sigterm-group, sigint-start, kill9, postgres, valkey, slow, rolling
(default: all; or DRILLS=a,b). Stores are
embedded (a dedicated cluster under .data/drills, really stopped and started) unless
DATABASE_URL and VALKEY_URL are both set: then the drill TRUNCATEs that database (use a
scratch one) and fakes outages with a cuttable TCP proxy. Durations: DRILL_OUTAGE_S (30),
DRILL_LOAD_S (5), DRILL_FLUSH_INTERVAL_S (1), DRILL_GRACEFUL_S (5), DRILL_FINAL_FLUSH_S (10),
DRILL_CONNECTIONS (48), DRILL_BUFFER_CAP (20000 per worker, Postgres drill).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.drills import common, outages, process, rolling, stores  # noqa: E402
from bench.drills.common import DrillResult  # noqa: E402

DRILLS: dict[str, Callable[[stores.DrillStores], Awaitable[DrillResult]]] = {
    "sigterm": process.sigterm,
    "sigterm-group": process.sigterm_group,
    "sigint-start": process.sigint_during_start,
    "kill9": process.kill_one_worker,
    "postgres": outages.postgres_down,
    "valkey": outages.valkey_down,
    "slow": outages.slow_postgres,
    "rolling": rolling.rolling_restart,
}
RESULTS = ROOT / "bench" / "results"


async def run(names: list[str]) -> list[DrillResult]:
    drill_stores = stores.from_env()
    await drill_stores.open()
    results = []
    try:
        for name in names:
            print(f"\n== {name}", flush=True)
            started = time.monotonic()
            try:
                result = await DRILLS[name](drill_stores)
            except Exception as exc:  # a drill that blows up is a FAIL, the others still run
                traceback.print_exc()
                result = DrillResult(name)
                result.check(f"drill ran ({type(exc).__name__}: {exc})", False)
            result.numbers["drill_s"] = round(time.monotonic() - started, 1)
            print(f"{'PASS' if result.passed else 'FAIL'}  {result.name}", flush=True)
            results.append(result)
    finally:
        await drill_stores.close()
    return results


def render(results: list[DrillResult], mode: str) -> str:
    lines = [
        f"# Fault drills — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`make drills` on {os.cpu_count()} cores ({platform.machine()}), server with "
        f"{common.WORKERS} workers on 127.0.0.1, rate limits off unless stated; load = a "
        f"closed-loop Python client ({common.CONNECTIONS} analytics connections, votes with a "
        f"fresh session each). Stores: {mode}. FLUSH_INTERVAL_S={common.FLUSH_S:g}, "
        f"GRACEFUL_SHUTDOWN_S={common.GRACEFUL_S:g}, FINAL_FLUSH_TIMEOUT_S="
        f"{common.FINAL_FLUSH_S:g}, outage {common.OUTAGE_S:g} s.",
        "",
        "Sent = request written to a socket; acked = 2xx; persisted = rows in Postgres "
        "afterwards (events are matched by a unique id, votes by (build, session)); ambiguous "
        "= the connection died before an answer.",
        "",
        "| drill | result | analytics sent / acked / persisted | votes sent / acked / "
        "persisted | duration |",
        "|---|---|---|---|---:|",
    ]
    for r in results:
        n = r.numbers
        analytics = (
            f"{n.get('analytics_sent', '—')} / {n.get('analytics_acked', '—')} / "
            f"{n.get('analytics_persisted', '—')}"
        )
        votes = (
            f"{n.get('votes_sent', '—')} / {n.get('votes_acked', '—')} / "
            f"{n.get('votes_persisted', '—')}"
        )
        verdict = "PASS" if r.passed else "FAIL"
        lines.append(
            f"| {r.name} | {verdict} | {analytics} | {votes} | {n.get('drill_s', '—')} s |"
        )
    for r in results:
        lines += ["", f"## {r.name} — {'PASS' if r.passed else 'FAIL'}", ""]
        if r.tables:
            lines += [*r.tables, ""]
        lines += [f"* {line}" for line in r.lines]
        lines += [f"* [{'x' if ok else ' '}] {label}" for label, ok in r.checks]
    return "\n".join(lines) + "\n"


def main() -> int:
    names = sys.argv[1:] or [
        n.strip() for n in os.environ.get("DRILLS", ",".join(DRILLS)).split(",") if n.strip()
    ]
    unknown = [n for n in names if n not in DRILLS]
    if unknown:
        print(f"unknown drill(s) {unknown}; choose from {list(DRILLS)}", file=sys.stderr)
        return 2
    mode = stores.from_env().mode
    try:
        import uvloop
    except ImportError:
        results = asyncio.run(run(names))
    else:  # the load generator is pure Python: the faster loop keeps the client out of the way
        results = uvloop.run(run(names))
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = render(results, mode)
    (RESULTS / "drills.md").write_text(text)
    (RESULTS / "drills.json").write_text(
        json.dumps(
            [
                {"drill": r.name, "passed": r.passed, "numbers": r.numbers, "checks": r.checks}
                for r in results
            ],
            indent=2,
            default=str,
        )
    )
    print()
    for r in results:
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
