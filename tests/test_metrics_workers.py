"""Metrics across processes: worker files merged, crashed workers' gauges dropped, the runner's
PROMETHEUS_MULTIPROC_DIR, and the real server with 2 workers (exact totals in one scrape)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.telemetry.metrics_dir import PREFIX, metrics_dir, sweep_stale_temp_dirs
from tests.conftest import Stores, clean_stores
from tests.factories import API
from tests.scrape import Scrape, scrape_until
from tests.server import ROOT, ServerProcess
from tests.test_metrics import DURATION_COUNT, REQUESTS, SEARCH_ROUTE, search

_WORKER = """
import sys
from service.telemetry import metrics
events = int(sys.argv[1])
metrics.WORKERS.set(1)
metrics.AGG_ACCEPTED.labels("search").inc(events)
metrics.AGG_DEPTH.labels("search").set(events)
print("ready", flush=True)
if sys.argv[2] == "stay":
    sys.stdin.read()  # alive until the test closes stdin
"""
_RENDER = (
    "import sys; from service.telemetry import metrics; sys.stdout.write(metrics.render().decode())"
)


def test_multiprocess_sums_live_workers_and_drops_crashed_ones(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run = [sys.executable, "-c"]
    crashed = subprocess.run([*run, _WORKER, "5", "exit"], env=env, cwd=ROOT, check=True)
    assert crashed.returncode == 0  # exited without mark_process_dead, like a SIGKILL
    alive = subprocess.Popen(
        [*run, _WORKER, "2", "stay"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert alive.stdout is not None
        assert alive.stdout.readline() == b"ready\n"
        text = subprocess.run(
            [*run, _RENDER], env=env, cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    finally:
        alive.communicate(b"")
    merged = Scrape.parse(text)
    # Counters keep what a dead worker counted; its gauges are gone (no double counting).
    assert merged.value("myashes_aggregator_events_accepted_total", aggregator="search") == 7
    assert merged.value("myashes_aggregator_buffer_depth", aggregator="search") == 2
    assert merged.value("myashes_workers") == 1


async def _poll(url: str, ready: Callable[[Scrape], bool], timeout_s: float = 20.0) -> Scrape:
    """Scrape until `ready` (other workers publish their aggregator counts every second)."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        return await scrape_until(c, ready, timeout_s)


@pytest.mark.server
async def test_two_workers_one_scrape_has_the_exact_totals(stores: Stores):
    await clean_stores(stores)
    server = ServerProcess(
        stores.database_url, stores.valkey_url, workers=2, FLUSH_INTERVAL_S="0.2", LOG_LEVEL="INFO"
    )
    await asyncio.to_thread(server.start)
    try:
        both = await _poll(server.base_url, lambda s: s.value("myashes_workers") == 2)
        assert both.value("myashes_workers") == 2, server.log()
        searches, misses = 120, 7
        gate = asyncio.Semaphore(24)
        # A new connection per request, so the kernel spreads them over both workers.
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as c:

            async def send(i: int) -> int:
                async with gate:
                    r = await c.post(
                        f"{API}/analytics/search",
                        json=search(f"two workers {i}", "smart"),
                        headers={"Connection": "close"},
                    )
                    return r.status_code

            statuses = await asyncio.gather(*(send(i) for i in range(searches)))
            assert statuses == [201] * searches
            for _ in range(misses):
                assert (await c.get("/no/such/route")).status_code == 404

        labels = {"method": "POST", "route": SEARCH_ROUTE, "status_class": "2xx"}

        def settled(s: Scrape) -> bool:  # each worker publishes its counts every second
            return (
                s.value(REQUESTS, **labels) >= searches
                and s.value("myashes_aggregator_events_flushed_total", aggregator="search")
                >= searches
            )

        total = await _poll(server.base_url, settled)
        assert total.value(REQUESTS, **labels) == searches
        assert total.value(DURATION_COUNT, method="POST", route=SEARCH_ROUTE) == searches
        assert total.value(REQUESTS, method="GET", route="unmatched", status_class="4xx") == misses
        assert total.value("myashes_searches_recorded_total", mode="smart") == searches
        for name in ("accepted", "flushed"):
            family = f"myashes_aggregator_events_{name}_total"
            assert total.value(family, aggregator="search") == searches, server.log()
        assert total.value("myashes_aggregator_buffer_depth", aggregator="search") == 0
        assert total.value("myashes_workers") == 2
        assert total.value("myashes_db_pool_connections_max") == 2 * 10  # 2 workers x default
        served_by = {
            line["pid"]
            for line in map(json.loads, server.log().splitlines())
            if line.get("route") == SEARCH_ROUTE
        }
        assert len(served_by) == 2, "both workers served searches"
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 30)


def test_runner_exports_a_fresh_dir_and_removes_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with metrics_dir(Settings()) as path:
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == path
        assert Path(path).name.startswith(f"{PREFIX}{os.getpid()}-")
        assert list(Path(path).iterdir()) == []
    assert not Path(path).exists()


def test_runner_clears_stale_files_of_a_given_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    (tmp_path / "counter_12345.db").write_bytes(b"stale")
    (tmp_path / "keep.txt").write_text("not ours")
    with metrics_dir(Settings(prometheus_multiproc_dir=str(tmp_path))) as path:
        assert path == str(tmp_path) == os.environ["PROMETHEUS_MULTIPROC_DIR"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert tmp_path.exists()  # a given directory is the operator's: kept


def test_temp_dirs_of_killed_runners_are_swept(tmp_path: Path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"{PREFIX}{gone.pid}-abc"
    mine = tmp_path / f"{PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{PREFIX}not-a-pid"
    for d in (stale, mine, other):
        d.mkdir()
        (d / "counter_1.db").write_bytes(b"x")
    sweep_stale_temp_dirs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name])
