"""The real server with 2 workers: exact votes across workers, nothing lost on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.conftest import Stores, clean_stores
from tests.server import ServerProcess

pytestmark = pytest.mark.server

GRACEFUL_S, FINAL_FLUSH_S = 5, 10
EXIT_BUDGET_S = GRACEFUL_S + FINAL_FLUSH_S + 5  # drain + final flush + process teardown


def session(i: int) -> str:
    return f"sess_{i:024x}"


@pytest.fixture
def server(stores: Stores) -> Iterator[ServerProcess]:
    asyncio.run(clean_stores(stores))
    proc = ServerProcess(
        stores.database_url,
        stores.valkey_url,
        workers=2,
        FLUSH_INTERVAL_S="5",
        GRACEFUL_SHUTDOWN_S=str(GRACEFUL_S),
        FINAL_FLUSH_TIMEOUT_S=str(FINAL_FLUSH_S),
    ).start()
    try:
        yield proc
    finally:
        proc.kill()


async def _count(stores: Stores, sql: str) -> int:
    conn = await asyncpg.connect(stores.database_url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_votes_across_two_workers_are_exact(server: ServerProcess, stores: Stores):
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30) as c:
        builds = []
        for i in range(200):
            r = await c.post(
                "/api/v1/builds",
                json={
                    "name": f"b{i}",
                    "primary_archetype": random.choice(["tank", "mage"]),
                    "secondary_archetype": "bard",
                    "race": "vek",
                },
            )
            assert r.status_code == 201
            builds.append(r.json()["build_id"])
        votes = [(b, s, random.randint(1, 5)) for b in builds for s in range(20)]
        # 100 (build, session) pairs vote 4 times each, concurrently: one 200, three 409s.
        dupes = random.sample(votes, 100)
        attempts = votes + [v for v in dupes for _ in range(3)]
        random.shuffle(attempts)
        gate = asyncio.Semaphore(64)

        async def send(build_id: str, sess: int, rating: int) -> int:
            async with gate:
                r = await c.post(
                    f"/api/v1/builds/{build_id}/vote",
                    json={"rating": rating},
                    headers={"X-Session-ID": session(sess)},
                )
                return r.status_code

        codes = await asyncio.gather(*(send(*a) for a in attempts))
    assert codes.count(200) == len(votes)
    assert codes.count(409) == 300
    assert set(codes) == {200, 409}
    conn = await asyncpg.connect(stores.database_url)
    try:
        rows = await conn.fetch(
            "SELECT b.build_id, b.rating_sum, b.vote_count, sum(v.rating) AS s, count(v.*) AS n "
            "FROM builds b JOIN build_votes v USING (build_id) GROUP BY b.build_id"
        )
    finally:
        await conn.close()
    assert len(rows) == 200
    for row in rows:
        assert (row["rating_sum"], row["vote_count"]) == (row["s"], row["n"])
        assert row["vote_count"] == 20
    assert sum(r["vote_count"] for r in rows) == len(votes)


async def test_sigterm_under_load_persists_every_acknowledged_event(
    server: ServerProcess, stores: Stores
):
    acked = 0
    stop_sending = asyncio.Event()
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=10) as c:

        async def sender(worker: int) -> None:
            nonlocal acked
            i = 0
            while not stop_sending.is_set():
                i += 1
                try:
                    r = await c.post(
                        "/api/v1/analytics/search",
                        json={
                            "query": f"load {worker} {i % 7}",
                            "search_mode": "smart",
                            "result_count": i,
                        },
                        headers={"X-Session-ID": session(worker)},
                    )
                except httpx.HTTPError:
                    return  # the server is going away
                if r.status_code == 201:
                    acked += 1
                elif r.status_code != 503:
                    raise AssertionError(f"unexpected {r.status_code}: {r.text}")

        tasks = [asyncio.create_task(sender(w)) for w in range(64)]
        while acked < 2000:
            await asyncio.sleep(0.01)
        server.terminate()  # SIGTERM mid-load, as Kubernetes does
        started = time.monotonic()
        await asyncio.sleep(0.5)
        stop_sending.set()
        await asyncio.gather(*tasks)
        code = await asyncio.to_thread(server.wait, EXIT_BUDGET_S)
        elapsed = time.monotonic() - started
    assert code == 0, server.log()
    assert elapsed < EXIT_BUDGET_S
    persisted = await _count(stores, "SELECT count(*) FROM search_events")
    assert persisted == acked, f"acked {acked}, persisted {persisted}\n{server.log()}"
    assert await _count(stores, "SELECT coalesce(sum(count), 0) FROM search_rollups") == acked


async def test_ctrl_c_to_the_process_group_persists_every_event(
    server: ServerProcess, stores: Stores
):
    """A terminal's Ctrl-C signals every process: workers must still finish the final flush."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as c:
        for i in range(50):
            r = await c.post(
                "/api/v1/analytics/search",
                json={"query": f"ctrl c {i}", "search_mode": "deep", "result_count": 0},
            )
            assert r.status_code == 201
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGINT)
    assert await asyncio.to_thread(server.wait, EXIT_BUDGET_S) == 0, server.log()
    assert await _count(stores, "SELECT count(*) FROM search_events") == 50
