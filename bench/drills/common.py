"""Shared drill pieces: settings from the environment, the server, the persisted-vs-acked audit."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.drills.load import Load
from bench.drills.stores import DrillStores
from tests.server import ServerProcess


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


OUTAGE_S = _env("DRILL_OUTAGE_S", 30)  # Postgres/Valkey down, slow Postgres
LOAD_S = _env("DRILL_LOAD_S", 5)  # load before a fault, and the "before"/"after" windows
FLUSH_S = _env("DRILL_FLUSH_INTERVAL_S", 1)
GRACEFUL_S = _env("DRILL_GRACEFUL_S", 5)
FINAL_FLUSH_S = _env("DRILL_FINAL_FLUSH_S", 10)
MARGIN_S = 5.0  # process teardown on top of drain + final flush
EXIT_BUDGET_S = GRACEFUL_S + FINAL_FLUSH_S + MARGIN_S
CONNECTIONS = int(_env("DRILL_CONNECTIONS", 48))  # analytics senders; votes get a third
BUFFER_CAP = int(_env("DRILL_BUFFER_CAP", 20_000))  # per worker, Postgres-outage drill
WORKERS = 2


@dataclass
class DrillResult:
    name: str
    lines: list[str] = field(default_factory=list)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)  # markdown rendered as it is

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(ok for _, ok in self.checks)

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(f"  {line}", flush=True)

    def check(self, label: str, ok: bool) -> bool:
        self.checks.append((label, ok))
        print(f"  [{'ok' if ok else 'FAIL'}] {label}", flush=True)
        return ok


def server_env(**extra: Any) -> dict[str, str]:
    env = {
        "FLUSH_INTERVAL_S": str(FLUSH_S),
        "GRACEFUL_SHUTDOWN_S": str(GRACEFUL_S),
        "FINAL_FLUSH_TIMEOUT_S": str(FINAL_FLUSH_S),
        "LOG_LEVEL": "WARNING",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


async def start_server(stores: DrillStores, **env: Any) -> tuple[ServerProcess, list[int]]:
    """The server with WORKERS workers, all accepting; (server, worker pids)."""
    server = ServerProcess(
        stores.service_database_url, stores.service_valkey_url, workers=WORKERS, **server_env(**env)
    )
    await asyncio.to_thread(server.start, 60.0)
    try:
        pids = await asyncio.to_thread(server.wait_workers_ready, WORKERS, 60.0)
    except BaseException:
        server.kill()
        raise
    return server, pids


async def stop_server(
    server: ServerProcess, budget_s: float, *, group: bool = False
) -> tuple[int | None, float]:
    """SIGTERM to PID 1 (or to the whole process group); (exit code or None if it outlived
    budget_s + 30 s and was killed, seconds)."""
    started = time.monotonic()
    if group:
        server.signal_group(signal.SIGTERM)
    else:
        server.terminate()
    try:
        code: int | None = await asyncio.to_thread(server.wait, budget_s + 30)
    except Exception:
        code = None
        server.kill()
    return code, time.monotonic() - started


def check_worker_stops(result: DrillResult, server: ServerProcess) -> None:
    """Every worker that started ran its final flush exactly once; no trace of Sanic's broken
    stop paths (state Manager gone, "Killing", a half-started worker). Needs LOG_LEVEL=INFO."""
    lines = [json.loads(x) for x in server.log().splitlines() if x.startswith('{"ts"')]
    started = sorted(
        int(x["msg"].split("[")[1].rstrip("]"))
        for x in lines
        if x["msg"].startswith("Starting worker [")
    )
    flushed = sorted(x["pid"] for x in lines if x["msg"] == "worker stopped")
    result.say(f"workers started {started}, final flushes by {flushed}")
    result.check("every started worker ran its final flush once", flushed == started)
    markers = (
        "BrokenPipeError",
        "ConnectionRefusedError",
        "EOFError",
        "Killing",
        "KeyboardInterrupt",
    )
    broken = [m for m in markers if m in server.log()]
    result.check(f"no trace of a broken stop path ({', '.join(broken) or 'none'})", not broken)


def load_for(server: ServerProcess) -> Load:
    return Load("127.0.0.1", server.port)


async def reconcile_check(stores: DrillStores) -> int:
    """Builds `python -m service reconcile-tallies --check` finds drifted (it exits 1 then)."""
    env = {
        **os.environ,
        "DATABASE_URL": stores.admin_database_url,
        "VALKEY_URL": stores.admin_valkey_url,
        "LOG_LEVEL": "INFO",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "reconcile-tallies",
        "--check",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    found = re.search(r"tally check: \d+ builds, drift (\d+)", err.decode(errors="replace"))
    if found is None or proc.returncode != (1 if int(found[1]) else 0):
        raise RuntimeError(f"reconcile-tallies --check: exit {proc.returncode}: {err[-500:]!r}")
    return int(found[1])


async def audit(result: DrillResult, stores: DrillStores, load: Load) -> dict[str, int]:
    """Acked vs persisted, row by row; prints and returns the numbers."""
    events = [r[0] for r in await stores.fetch("SELECT result_count FROM search_events")]
    persisted_events = set(events)
    rollups = (await stores.fetch("SELECT coalesce(sum(count), 0) FROM search_rollups"))[0][0]
    logged = (await stores.fetch("SELECT coalesce(sum(events), 0) FROM flush_log"))[0][0]
    votes = {
        (r[0], r[1]) for r in await stores.fetch("SELECT build_id, session_id FROM build_votes")
    }
    drift = (
        await stores.fetch(
            "SELECT count(*) FROM builds b LEFT JOIN (SELECT build_id, count(*) AS n, "
            "sum(rating) AS s FROM build_votes GROUP BY build_id) v USING (build_id) "
            "WHERE b.vote_count <> coalesce(v.n, 0) OR b.rating_sum <> coalesce(v.s, 0)"
        )
    )[0][0]
    a, v = load.analytics, load.votes
    numbers = {
        "analytics_sent": a.sent,
        "analytics_acked": len(load.acked_events),
        "analytics_persisted": len(events),
        "analytics_lost": len(load.acked_events - persisted_events),
        "analytics_duplicates": len(events) - len(persisted_events),
        "analytics_unacked_persisted": len(persisted_events - load.acked_events),
        "analytics_ambiguous": a.ambiguous,
        "analytics_rejected": a.rejected,
        "rollup_count_sum": int(rollups),
        "flush_log_events": int(logged),
        "votes_sent": v.sent,
        "votes_acked": len(load.acked_votes),
        "votes_persisted": len(votes),
        "votes_lost": len(load.acked_votes - votes),
        "votes_unacked_persisted": len(votes - load.acked_votes),
        "votes_ambiguous": v.ambiguous,
        "votes_rejected": v.rejected,
        "tally_drift_builds": int(drift),
        "tally_check_drift": await reconcile_check(stores),
    }
    stray = persisted_events - load.acked_events - load.ambiguous_events
    numbers["analytics_stray"] = len(stray)  # persisted, yet answered with an error: a bug
    result.say(f"analytics: {a.summary()}")
    result.say(
        f"analytics: sent {a.sent} / acked {numbers['analytics_acked']} / persisted "
        f"{numbers['analytics_persisted']} (lost {numbers['analytics_lost']}, duplicates "
        f"{numbers['analytics_duplicates']}, persisted of {a.ambiguous} ambiguous "
        f"{numbers['analytics_unacked_persisted']}); rollup sum {rollups}, flush_log {logged}"
    )
    result.say(f"votes: {v.summary()}")
    result.say(
        f"votes: sent {v.sent} / acked {numbers['votes_acked']} / persisted "
        f"{numbers['votes_persisted']} (acked but missing {numbers['votes_lost']}, "
        f"persisted of {v.ambiguous} ambiguous {numbers['votes_unacked_persisted']}); "
        f"builds whose tally differs from build_votes: {drift} (reconcile-tallies --check: "
        f"{numbers['tally_check_drift']})"
    )
    result.numbers.update(numbers)
    return numbers


def server_errors(result: DrillResult, load: Load, since: float = 0.0) -> dict[str, int]:
    """5xx answers other than 503 (a contract breach: every failure must be a 503), with
    the first body of each printed."""
    found: dict[str, int] = {}
    for name, tally in (
        ("analytics", load.analytics),
        ("votes", load.votes),
        ("reads", load.reads),
    ):
        for status, n in tally.statuses.items():
            if status >= 500 and status != 503:
                found[f"{name} {status}"] = n
                at = tally.first_status_at[status] - since
                body = tally.first_body.get(status, b"").decode(errors="replace")
                result.say(f"{name}: {n} x {status}, first at t={at:.1f} s: {body}")
    return found


def check_exact(result: DrillResult, n: dict[str, int], *, analytics: bool = True) -> None:
    """Every acked item persisted once; nothing persisted that was refused; tallies exact."""
    if analytics:
        result.check(
            "every acknowledged analytics event persisted exactly once",
            n["analytics_lost"] == 0 and n["analytics_duplicates"] == 0,
        )
        result.check(
            "rollup counts and flush_log match the raw rows",
            n["rollup_count_sum"] == n["analytics_persisted"] == n["flush_log_events"],
        )
        result.check("no event persisted after an error answer", n["analytics_stray"] == 0)
    result.check("every acknowledged vote persisted", n["votes_lost"] == 0)
    tallies_exact(result, n)


def tallies_exact(result: DrillResult, n: dict[str, int]) -> None:
    """Drift 0, by the drill's own SQL and by `reconcile-tallies --check`."""
    result.check(
        "build tallies equal build_votes (SQL and reconcile-tallies --check)",
        n["tally_drift_builds"] == 0 and n["tally_check_drift"] == 0,
    )


async def wait_flushed(stores: DrillStores, load: Load, timeout_s: float) -> float:
    """Poll until every acked event is in Postgres (or timeout); seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        count = (await stores.fetch("SELECT count(*) FROM search_events"))[0][0]
        if count >= len(load.acked_events):
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started
