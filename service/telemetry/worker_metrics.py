"""Per-worker metrics exporter: aggregator stats, buffer gauges, pool and in-flight, every second.

The aggregators count in plain ints (`BatchingActor.stats`, no I/O on their hot path); this
moves the increments since the last sync into the shared counters, once a second, right
before a scrape served by this worker, and once more after the final flush at stop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from aggregators.base import BatchingActor
from aggregators.tasks import cancel_and_wait
from service.telemetry import metrics

SYNC_INTERVAL_S = 1.0
_COUNTED = ("accepted", "flushed", "rejected", "failures")

log = logging.getLogger("myashes.metrics")


class AggregatorExport:
    """One aggregator's metrics; counters advance by what its stats gained since last sync."""

    def __init__(self, aggregator: BatchingActor[Any, Any]) -> None:
        name = aggregator.name
        self.aggregator = aggregator
        self.seen = dict.fromkeys(_COUNTED, 0)
        self.counters = {
            "accepted": metrics.AGG_ACCEPTED.labels(name),
            "flushed": metrics.AGG_FLUSHED.labels(name),
            "rejected": metrics.AGG_REJECTED.labels(name),
            "failures": metrics.AGG_FLUSH_FAILURES.labels(name),
        }
        self.duration = metrics.AGG_FLUSH_DURATION.labels(name)
        self.depth = metrics.AGG_DEPTH.labels(name)
        self.fill = metrics.AGG_FILL.labels(name)
        self.age = metrics.AGG_PENDING_AGE.labels(name)
        metrics.AGG_CAPACITY.labels(name).set(aggregator.max_items)
        metrics.AGG_FLUSH_INTERVAL.labels(name).set(aggregator.interval_s)
        aggregator.on_flush = self._flushed

    def _flushed(self, name: str, duration: float, count: int, ok: bool) -> None:
        if ok:
            self.duration.observe(duration)

    def sync(self, now: float) -> None:
        stats = self.aggregator.stats
        for field, counter in self.counters.items():
            value = getattr(stats, field)
            if value > self.seen[field]:
                counter.inc(value - self.seen[field])
                self.seen[field] = value
        stats.durations.clear()  # observed through on_flush already
        self.depth.set(self.aggregator.depth)
        self.fill.set(self.aggregator.fill())
        self.age.set(self.aggregator.oldest_pending_age_s(now))


class WorkerMetrics:
    """Started per worker once its aggregators run; stopped after their final flush.

    `db` is the worker's Tortoise client (its asyncpg pool is sampled), `aggregators` the
    worker's batching actors.
    """

    def __init__(self, db: Any, aggregators: Sequence[BatchingActor[Any, Any]]) -> None:
        self._db = db
        self._aggregators = [AggregatorExport(a) for a in aggregators]
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        metrics.init_series()
        metrics.WORKERS.set(1)
        self.sync()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics-sync")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL_S)
            try:
                self.sync()
            except Exception:  # metrics must never take a worker down
                log.exception("metrics sync failed")

    def sync(self) -> None:
        now = time.monotonic()
        for export in self._aggregators:
            export.sync(now)
        metrics.http.drain()
        metrics.searches.drain()
        metrics.HTTP_IN_FLIGHT.set(len(metrics.INFLIGHT))
        pool = getattr(self._db, "_pool", None)  # asyncpg.Pool behind Tortoise's client
        if pool is not None:
            metrics.DB_POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())
            metrics.DB_POOL_MAX.set(pool.get_max_size())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def close(self) -> None:
        """After the final flush: its counts go in, then this worker's live gauges go out."""
        now = time.monotonic()
        for export in self._aggregators:
            export.sync(now)
        metrics.http.drain()
        metrics.searches.drain()
        metrics.mark_dead(os.getpid())


def log_worker_stopped(aggregators: Sequence[BatchingActor[Any, Any]]) -> None:
    """One summary line per worker after its final flush; WARNING when events were left."""
    summary = {
        a.name: {
            "accepted": a.stats.accepted,
            "flushed": a.stats.flushed,
            "rejected": a.stats.rejected,
            "failures": a.stats.failures,
            "pending": a.depth,
        }
        for a in aggregators
    }
    pending = sum(a["pending"] for a in summary.values())
    logging.getLogger("myashes.worker").log(
        logging.WARNING if pending else logging.INFO,
        "worker stopped",
        extra={"aggregators": summary, "pending": pending},
    )
