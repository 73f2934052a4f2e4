"""Orderly stop whoever gets the signal and whenever it comes: SIGTERM/SIGINT to PID 1 (the
kubelet) or to the whole process group (systemd's KillMode=control-group, `kill -- -PGID`,
Ctrl-C), under load or while starting. Every started worker runs its final flush exactly
once, nothing acknowledged is lost, the main process exits 0 within the shutdown budget,
nothing of the process group survives, and embedded servers are stopped.

The workarounds live in service/runtime/supervisor.py (sanic-org/sanic#2997).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

from tests.conftest import Stores, clean_stores
from tests.server import ServerProcess

pytestmark = pytest.mark.server

GRACEFUL_S, FINAL_FLUSH_S = 3, 10
EXIT_BUDGET_S = GRACEFUL_S + FINAL_FLUSH_S + 5  # drain + final flush + process teardown
# Traces of Sanic's broken stop paths: its state Manager gone (BrokenPipeError, refused,
# EOFError), "Shutdown interrupted. Killing.", a half-started worker (KeyboardInterrupt).
BROKEN = (
    "BrokenPipeError",
    "ConnectionRefusedError",
    "EOFError",
    "Killing",
    "KeyboardInterrupt",
    "Experienced exception",
    "Worker shutdown timed out",
)


def server_for(database_url: str | None, valkey_url: str | None, **env: str) -> ServerProcess:
    server = ServerProcess(
        database_url or "",
        valkey_url or "",
        workers=2,
        LOG_LEVEL="INFO",
        FLUSH_INTERVAL_S="5",  # events wait in the buffers: only the final flush saves them
        GRACEFUL_SHUTDOWN_S=str(GRACEFUL_S),
        FINAL_FLUSH_TIMEOUT_S=str(FINAL_FLUSH_S),
        **env,
    )
    if database_url is None:  # embedded servers: the variables must be unset, not empty
        del server.env["DATABASE_URL"], server.env["VALKEY_URL"]
    return server


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill()


def records(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(x) for x in server.log().splitlines() if x.startswith('{"ts"')]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_and_check(
    server: ServerProcess, send: Any, *, workers_started: bool | None = True
) -> None:
    """Send the signal(s), then: exit 0 within budget, one final flush per started worker,
    no error trace, nothing of the group left."""
    assert server.process is not None
    pgid = server.process.pid
    sent = time.monotonic()
    send()
    code = server.wait(EXIT_BUDGET_S + 30)
    elapsed = time.monotonic() - sent
    log = server.log()
    assert code == 0, log
    assert elapsed < EXIT_BUDGET_S, f"{elapsed:.1f} s\n{log}"
    for marker in BROKEN:
        assert marker not in log, log
    lines = records(server)
    started = sorted(
        int(r["msg"].split("[")[1].rstrip("]"))
        for r in lines
        if r["msg"].startswith("Starting worker [")
    )
    flushed = sorted(r["pid"] for r in lines if r["msg"] == "worker stopped")
    assert flushed == started, log  # every started worker: its final flush, exactly once
    if workers_started is not None:
        assert bool(started) is workers_started, log
    deadline = time.monotonic() + 10
    while group_alive(pgid):
        assert time.monotonic() < deadline, "processes of the server's group still run"
        time.sleep(0.05)


async def count(stores: Stores, sql: str) -> int:
    conn = await asyncpg.connect(stores.database_url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def load_until_stopped(server: ServerProcess, signals: Any) -> int:
    """64 senders of analytics events; `signals()` once 1,000 are acked; returns acked."""
    acked = 0
    stop_sending = asyncio.Event()
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=10) as c:

        async def sender(n: int) -> None:
            nonlocal acked
            i = 0
            while not stop_sending.is_set():
                i += 1
                try:
                    r = await c.post(
                        "/api/v1/analytics/search",
                        json={
                            "query": f"stop {n} {i % 5}",
                            "search_mode": "quick",
                            "result_count": i,
                        },
                        headers={"X-Session-ID": f"sess_{n:024x}"},
                    )
                except httpx.HTTPError:
                    return  # the server is going away
                if r.status_code == 201:
                    acked += 1
                else:
                    assert r.status_code == 503, r.text

        tasks = [asyncio.create_task(sender(n)) for n in range(64)]
        while acked < 1000:
            await asyncio.sleep(0.01)
        checked = asyncio.create_task(asyncio.to_thread(stop_and_check, server, signals))
        await asyncio.sleep(0.5)
        stop_sending.set()
        await asyncio.gather(*tasks)
        await checked
    return acked


@pytest.mark.parametrize(
    "how",
    ["SIGTERM to the group", "SIGTERM to PID 1, then SIGINT to the group"],
)
async def test_stop_under_load_persists_every_acknowledged_event(
    stores: Stores, servers: list[ServerProcess], how: str
) -> None:
    await clean_stores(stores)
    server = server_for(stores.database_url, stores.valkey_url)
    servers.append(server)
    await asyncio.to_thread(server.start)
    await asyncio.to_thread(server.wait_workers_ready, 2)

    def signals() -> None:
        if how == "SIGTERM to the group":
            server.signal_group(signal.SIGTERM)
        else:  # the kubelet's SIGTERM, then an impatient Ctrl-C mid-flush
            server.terminate()
            time.sleep(0.1)
            server.signal_group(signal.SIGINT)

    acked = await load_until_stopped(server, signals)
    assert await count(stores, "SELECT count(*) FROM search_events") == acked
    assert await count(stores, "SELECT coalesce(sum(count), 0) FROM search_rollups") == acked


@pytest.mark.parametrize(
    ("sig", "moment"),
    [
        # Development migrations run: the server then never starts.
        (signal.SIGTERM, "development: applying pending migrations"),
        # Sanic's main process starts its state Manager and the workers (or not yet).
        (signal.SIGINT, "Goin' Fast"),
        # A worker has imported the app and opens its stores.
        (signal.SIGTERM, "Starting worker ["),
        # One worker has opened its stores, the other may not have (the wait-for-ack hang).
        (signal.SIGINT, "worker resources open"),
        (signal.SIGTERM, "worker resources open"),
    ],
)
def test_stop_during_start(
    stores: Stores, servers: list[ServerProcess], sig: signal.Signals, moment: str
) -> None:
    server = server_for(stores.database_url, stores.valkey_url)
    servers.append(server)
    server.launch()
    server.wait_log(moment)
    started = {"development": False, "Goin' Fast": None}.get(moment.split(":")[0], True)
    stop_and_check(server, lambda: server.signal_group(sig), workers_started=started)
    if moment.startswith("development"):
        assert "SIGTERM before serving: not starting the server" in server.log()


def test_embedded_servers_stop_with_the_group_also_after_a_crashed_owner(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    """`make run` without URLs, stopped by the whole group's SIGTERM: PostgreSQL and Valkey go
    too, even when an earlier run was SIGKILLed and left its pid among the owners."""
    data = tmp_path / "data"

    def run() -> ServerProcess:
        server = server_for(None, None, DATA_DIR=str(data))
        servers.append(server)
        return server.start(timeout_s=180)

    crashed = run()
    crashed.kill()  # SIGKILL to the group: no cleanup at all
    owners = json.loads((data / "pg" / ".handle_pids.json").read_text())
    assert crashed.process is not None
    assert owners == [crashed.process.pid]
    postmaster = int((data / "pg" / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, 0)  # still running (pg_ctl starts it in its own session)

    server = run()
    server.wait_workers_ready(2)
    stores_running = processes_using(data)
    assert postmaster in stores_running
    assert any("valkey" in name for name in stores_running.values()), stores_running
    stop_and_check(server, lambda: server.signal_group(signal.SIGTERM))
    assert "stopping embedded servers" in server.log()
    assert json.loads((data / "pg" / ".handle_pids.json").read_text()) == []
    assert processes_using(data) == {}


def processes_using(directory: Path) -> dict[int, str]:
    """pid -> name of the processes whose command line or working directory is under
    `directory` (PostgreSQL: -D <data>/pg; Valkey runs in its data directory)."""
    found = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline", "cwd"]):
        texts = [*(proc.info["cmdline"] or ()), proc.info["cwd"] or ""]
        if any(str(directory) in text for text in texts):
            found[proc.info["pid"]] = proc.info["name"]
    return found
