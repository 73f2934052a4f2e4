"""Dependency checks in the background of each worker: PostgreSQL and Valkey are probed every
HEALTH_CHECK_INTERVAL_S, and /health/ready and /metrics answer from the latest results, so a
flood of probes or scrapes never reaches the stores (CONTRACT, "Rate limits").

GET /health (rate-limited) runs a fresh check, which becomes the latest result too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aggregators.tasks import cancel_and_wait
from service.telemetry import metrics

CHECK_TIMEOUT_S = 2.0
Probe = Callable[[], Awaitable[object]]

log = logging.getLogger("myashes.health")


@dataclass(frozen=True, slots=True)
class Check:
    """One check of one dependency, as /health reports it."""

    ok: bool
    latency_ms: float | None
    error: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "latency_ms": self.latency_ms}
        if self.error is not None:
            body["error"] = self.error
        return body


NOT_CHECKED = Check(ok=False, latency_ms=None, error="NotCheckedYet")


def _consume(task: asyncio.Task[object]) -> None:
    """Retrieve a timed-out probe's outcome (no "exception was never retrieved" at exit)."""
    if not task.cancelled():
        task.exception()


class _Probe:
    """One dependency's probe, single flight: concurrent checks (the background round and a
    /health) share the probe in flight. A probe that outlives its timeout is cancelled but
    never awaited (a query cancelled on a hung connection can take 30 s to unwind); until it
    has unwound, checks report the dependency down at once instead of stacking probes."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe
        self._task: asyncio.Task[object] | None = None
        self._started = 0.0

    async def check(self, timeout_s: float) -> tuple[Check, float]:
        task = self._task
        if task is None or task.done():
            if task is not None:
                _consume(task)
            self._started = time.perf_counter()
            self._task = task = asyncio.ensure_future(self._probe())
        remaining = self._started + timeout_s - time.perf_counter()
        if remaining > 0:
            await asyncio.wait({task}, timeout=remaining)
        elapsed = time.perf_counter() - self._started
        if not task.done():
            task.cancel()
            return Check(False, None, "TimeoutError"), elapsed
        if task.cancelled():
            return Check(False, None, "CancelledError"), elapsed
        error = task.exception()
        if error is not None:  # any failure means "down" for a probe
            return Check(False, None, type(error).__name__), elapsed
        return Check(True, round(elapsed * 1000, 2)), elapsed

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task.add_done_callback(_consume)


class DependencyMonitor:
    """The latest check of each named probe, refreshed every `interval_s` by one task."""

    def __init__(
        self, probes: Mapping[str, Probe], interval_s: float, timeout_s: float = CHECK_TIMEOUT_S
    ) -> None:
        self._probes = {name: _Probe(probe) for name, probe in probes.items()}
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.latest: dict[str, Check] = dict.fromkeys(self._probes, NOT_CHECKED)
        self.checks = 0  # completed rounds (tests wait on it)
        self._task: asyncio.Task[None] | None = None

    def up(self, name: str) -> bool:
        return self.latest[name].ok

    async def check(self) -> dict[str, Check]:
        """Probe every dependency at once; the results become the latest (and the gauges)."""
        names = list(self._probes)
        results = await asyncio.gather(*(self._probes[n].check(self.timeout_s) for n in names))
        latest = {}
        for name, (check, elapsed) in zip(names, results, strict=True):
            latest[name] = check
            metrics.DEPENDENCY_UP.labels(name).set(1 if check.ok else 0)
            metrics.DEPENDENCY_CHECK_DURATION.labels(name).set(elapsed)
        self.latest = latest
        self.checks += 1
        return latest

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="dependency-checks")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:  # the checks must never stop: readiness depends on them
                log.exception("dependency check failed")

    async def stop(self) -> None:
        for probe in self._probes.values():
            probe.cancel()
        await cancel_and_wait(self._task)
        self._task = None
