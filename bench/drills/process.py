"""Process drills: SIGTERM to the server under load (to PID 1, or to the whole process group as
systemd and `kill -- -PGID` do); SIGINT to the group while it starts; kill -9 of one worker."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from bench.drills.common import (
    CONNECTIONS,
    EXIT_BUDGET_S,
    FINAL_FLUSH_S,
    FLUSH_S,
    GRACEFUL_S,
    LOAD_S,
    WORKERS,
    DrillResult,
    audit,
    check_exact,
    check_worker_stops,
    load_for,
    server_env,
    server_errors,
    start_server,
    stop_server,
    tallies_exact,
)
from bench.drills.stores import DrillStores
from tests.server import ServerProcess


async def sigterm(stores: DrillStores) -> DrillResult:
    return await _sigterm_under_load(stores, group=False)


async def sigterm_group(stores: DrillStores) -> DrillResult:
    return await _sigterm_under_load(stores, group=True)


async def _sigterm_under_load(stores: DrillStores, *, group: bool) -> DrillResult:
    target = "the process group (kill -- -PGID)" if group else "PID 1"
    result = DrillResult(f"SIGTERM to {target} under load (2 workers)")
    build_ids = await stores.reset()
    server, _ = await start_server(stores, LOG_LEVEL="INFO")
    load = load_for(server)
    try:
        load.start(analytics=CONNECTIONS, votes=CONNECTIONS // 3, build_ids=build_ids)
        await asyncio.sleep(LOAD_S)
        code, elapsed = await stop_server(server, EXIT_BUDGET_S, group=group)  # load runs on
    finally:
        await load.finish()
        server.kill()
    check_worker_stops(result, server)
    result.say(
        f"exit code {code} after {elapsed:.2f} s (budget {EXIT_BUDGET_S:.0f} s = "
        f"GRACEFUL_SHUTDOWN_S {GRACEFUL_S:g} + FINAL_FLUSH_TIMEOUT_S {FINAL_FLUSH_S:g} + 5)"
    )
    result.numbers.update(exit_code=code, exit_s=round(elapsed, 2), budget_s=EXIT_BUDGET_S)
    numbers = await audit(result, stores, load)
    result.check("exit code 0", code == 0)
    result.check(f"exit within {EXIT_BUDGET_S:.0f} s", elapsed <= EXIT_BUDGET_S)
    result.check("no 5xx other than 503", not server_errors(result, load))
    check_exact(result, numbers)
    return result


async def sigint_during_start(stores: DrillStores) -> DrillResult:
    """Ctrl-C (or a pod deleted right after it started): SIGINT to the whole group once the
    first worker has opened its stores, while the other may still be starting."""
    result = DrillResult("SIGINT to the process group during start (2 workers)")
    await stores.reset()
    server = ServerProcess(
        stores.service_database_url,
        stores.service_valkey_url,
        workers=WORKERS,
        **server_env(LOG_LEVEL="INFO"),
    )
    server.launch()
    try:
        await asyncio.to_thread(server.wait_log, "worker resources open", 60.0)
        started = time.monotonic()
        server.signal_group(signal.SIGINT)
        try:
            code: int | None = await asyncio.to_thread(server.wait, EXIT_BUDGET_S + 30)
        except Exception:
            code = None
        elapsed = time.monotonic() - started
    finally:
        server.kill()
    result.say(f"exit code {code} after {elapsed:.2f} s (Sanic 25.12 alone: hangs for good)")
    result.numbers.update(exit_code=code, exit_s=round(elapsed, 2))
    result.check("exit code 0", code == 0)
    result.check(f"exit within {EXIT_BUDGET_S:.0f} s", elapsed <= EXIT_BUDGET_S)
    check_worker_stops(result, server)
    return result


async def kill_one_worker(stores: DrillStores) -> DrillResult:
    result = DrillResult("kill -9 of one worker under load")
    build_ids = await stores.reset()
    server, pids = await start_server(stores)
    load = load_for(server)
    after_s = max(LOAD_S, 5.0)
    try:
        load.start(analytics=CONNECTIONS, votes=CONNECTIONS // 3, build_ids=build_ids)
        await asyncio.sleep(LOAD_S)
        victim = pids[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        seen: list[list[int]] = []
        while time.monotonic() - killed_at < after_s:
            await asyncio.sleep(0.5)
            seen.append(await asyncio.to_thread(server.worker_pids))
        main_alive = server.process is not None and server.process.poll() is None
        code, elapsed = await stop_server(server, EXIT_BUDGET_S)
    finally:
        await load.finish()
        server.kill()
    survivors = seen[-1] if seen else []
    restarted = [p for p in survivors if p not in pids]
    window = load.analytics.acked_between(killed_at - FLUSH_S, killed_at)
    served_after = load.analytics.acked_between(killed_at + 1, killed_at + after_s)
    result.say(
        f"killed worker {victim} of {pids}; workers alive after: {survivors} "
        f"({'a replacement was started: ' + str(restarted) if restarted else 'no restart'}); "
        f"main process alive: {main_alive}"
    )
    result.say(
        f"after the kill the server kept answering: {served_after} analytics events acked in "
        f"the {after_s - 1:.0f} s after it"
    )
    result.say(f"final SIGTERM: exit code {code} after {elapsed:.2f} s")
    numbers = await audit(result, stores, load)
    loss = numbers["analytics_lost"]
    result.say(
        f"analytics loss: {loss} acked events (bound: one flush interval's worth = {window} "
        f"events acked by the whole server in the {FLUSH_S:g} s before the kill; "
        f"loss = {loss / window:.0%} of it)"
        if window
        else f"analytics loss: {loss} acked events (no events acked in the last interval)"
    )
    result.numbers.update(
        victim=victim,
        workers_after=survivors,
        restarted=restarted,
        main_alive=main_alive,
        one_interval_events=window,
        served_after_kill=served_after,
        exit_code=code,
        exit_s=round(elapsed, 2),
    )
    result.check("every acknowledged vote persisted", numbers["votes_lost"] == 0)
    tallies_exact(result, numbers)
    result.check(f"analytics loss <= one flush interval's worth ({window})", loss <= window)
    result.check("no duplicated events", numbers["analytics_duplicates"] == 0)
    result.check("the surviving worker kept serving", served_after > 0 and main_alive)
    result.check("no 5xx other than 503", not server_errors(result, load, killed_at))
    return result
