"""A bounded fault drill in the suite: kill -9 of one worker under vote load (the full set of
drills, with durations and reports, is `make drills`)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.conftest import Stores, clean_stores
from tests.server import ServerProcess

pytestmark = pytest.mark.server

BUILDS = 100


@pytest.fixture
def server(stores: Stores) -> Iterator[ServerProcess]:
    asyncio.run(clean_stores(stores))
    proc = ServerProcess(
        stores.database_url,
        stores.valkey_url,
        workers=2,
        GRACEFUL_SHUTDOWN_S="3",
        FINAL_FLUSH_TIMEOUT_S="5",
    ).start()
    try:
        yield proc
    finally:
        proc.kill()


async def _seed(stores: Stores) -> list[str]:
    ids = [f"b_{i:08x}" for i in range(BUILDS)]
    conn = await asyncpg.connect(stores.database_url)
    try:
        await conn.executemany(
            "INSERT INTO builds (build_id, name, primary_archetype, secondary_archetype, "
            "class_name, race, is_public, is_template, rating_sum, vote_count, created_at, "
            "updated_at) VALUES ($1, 'drill', 'tank', 'tank', 'Guardian', 'vek', true, false, "
            "0, 0, now(), now())",
            [(i,) for i in ids],
        )
    finally:
        await conn.close()
    return ids


async def test_kill9_of_one_worker_loses_no_acknowledged_vote(
    server: ServerProcess, stores: Stores
):
    builds = await _seed(stores)
    pids = await asyncio.to_thread(server.wait_workers_ready, 2)
    acked: set[tuple[str, str]] = set()
    acked_after_kill = 0
    killed_at: float | None = None
    stop = asyncio.Event()
    counter = itertools.count()
    limits = httpx.Limits(max_connections=32)

    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=10) as c:

        async def voter() -> None:
            nonlocal acked_after_kill
            while not stop.is_set():
                build, session = random.choice(builds), f"sess_{next(counter):024x}"
                try:
                    r = await c.post(
                        f"/api/v1/builds/{build}/vote",
                        json={"rating": random.randint(1, 5)},
                        headers={"X-Session-ID": session},
                    )
                except httpx.HTTPError:
                    await asyncio.sleep(0.01)  # the killed worker's connections reset
                    continue
                assert r.status_code == 200, r.text
                acked.add((build, session))
                if killed_at is not None and time.monotonic() > killed_at + 0.5:
                    acked_after_kill += 1

        tasks = [asyncio.create_task(voter()) for _ in range(32)]
        while len(acked) < 300:
            await asyncio.sleep(0.01)
        os.kill(pids[0], signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*tasks)

    assert server.worker_pids() == pids[1:]  # Sanic does not replace a killed worker
    # ... so liveness fails and Kubernetes restarts the pod (its SIGTERM flushes the rest).
    live = httpx.get(f"{server.base_url}/health/live", timeout=5)
    assert live.status_code == 503
    assert live.json()["error"] == "service_unavailable"
    server.terminate()
    assert await asyncio.to_thread(server.wait, 20) == 0
    assert acked_after_kill > 0  # the surviving worker kept serving
    conn = await asyncpg.connect(stores.database_url)
    try:
        stored = {
            (r[0], r[1]) for r in await conn.fetch("SELECT build_id, session_id FROM build_votes")
        }
        drift = await conn.fetchval(
            "SELECT count(*) FROM builds b WHERE vote_count <> "
            "(SELECT count(*) FROM build_votes v WHERE v.build_id = b.build_id)"
        )
    finally:
        await conn.close()
    assert acked <= stored, f"{len(acked - stored)} acknowledged votes lost"
    assert drift == 0
    check = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service", "reconcile-tallies", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "DATABASE_URL": stores.database_url, "VALKEY_URL": stores.valkey_url},
    )
    assert check.returncode == 0, check.stderr  # rating_sum too, as the periodic check sees it
    assert f"tally check: {BUILDS} builds, drift 0, repaired 0" in check.stderr
