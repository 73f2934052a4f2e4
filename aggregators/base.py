"""BatchingActor: a bounded in-memory buffer owned by one event loop, flushed in batches.

`add()` is synchronous (no await, no lock, no queue: the loop that calls it owns the buffer).
The run loop flushes every `interval_s`, or at once when a subclass calls `_wake()` (group
commit). A failed flush keeps its batch (same identity) and retries with backoff; the buffer
stays bounded meanwhile, so callers see `add() -> False` instead of unbounded growth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Batch = TypeVar("Batch")

log = logging.getLogger("myashes.aggregators")

# Retry cadence while a store is down: short enough that 503s stop within seconds of the
# store coming back; a full buffer also triggers an early retry (at most every
# FULL_RETRY_S), since every rejected request is one the store's return would have saved.
MAX_BACKOFF_S = 5.0
FULL_RETRY_S = 1.0


@dataclass
class Stats:
    """Counters every aggregator keeps (exported as metrics)."""

    accepted: int = 0
    flushed: int = 0
    rejected: int = 0
    failures: int = 0
    flushes: int = 0
    last_flush_duration_s: float = 0.0
    last_success: float | None = None  # time.monotonic() of the last successful flush
    durations: list[float] = field(default_factory=list)  # drained by the metrics exporter


FlushHook = Callable[[str, float, int, bool], None]


class BatchingActor(ABC, Generic[Item, Batch]):
    """Generic batching actor; subclasses define how items become a batch and are written."""

    name = "aggregator"

    def __init__(self, *, interval_s: float, max_items: int, max_bytes: int | None = None) -> None:
        self.interval_s = interval_s
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.stats = Stats()
        self._buffer: list[Item] = []
        self._bytes = 0
        self._inflight: Batch | None = None
        self._inflight_items = 0
        self._inflight_bytes = 0
        self._inflight_since = 0.0  # time.monotonic() its oldest item was accepted at
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._backoff_s = 0.0
        self._stopping = False
        self._last_attempt = 0.0  # time.monotonic() of the last write attempt
        self.on_flush: FlushHook | None = None

    # ---- hot path -------------------------------------------------------------------------

    def add(self, item: Item, size: int = 0) -> bool:
        """Buffer one item of `size` bytes; False (counted as rejected) when the buffer is full."""
        if self.depth >= self.max_items or (
            self.max_bytes is not None and self.buffered_bytes + size > self.max_bytes
        ):
            self.stats.rejected += 1
            if time.monotonic() - self._last_attempt >= FULL_RETRY_S:
                self._wake()
            return False
        self._buffer.append(item)
        self._bytes += size
        self.stats.accepted += 1
        return True

    @property
    def depth(self) -> int:
        """Items accepted but not yet durable (buffered plus the batch being written)."""
        return len(self._buffer) + self._inflight_items

    @property
    def buffered_bytes(self) -> int:
        return self._bytes + self._inflight_bytes

    def fill(self) -> float:
        """How full the buffer is: the larger of items / item cap and bytes / byte cap, so 1.0
        is where `add()` starts refusing whichever cap binds first."""
        fill = self.depth / self.max_items
        if self.max_bytes:
            fill = max(fill, self.buffered_bytes / self.max_bytes)
        return fill

    def oldest_pending_age_s(self, now: float | None = None) -> float:
        """Seconds the oldest item accepted but not yet durable has waited; 0 when none is.

        Staleness, not idle time: a worker idle for a minute that just got one item reports
        that item's age, not the minute since its last flush.
        """
        since = self._pending_since()
        if since is None:
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - since)

    def _pending_since(self) -> float | None:
        """time.monotonic() at which the oldest pending item was accepted (None: none is)."""
        heads = [self._accepted_at(self._buffer[0])] if self._buffer else []
        if self._inflight is not None:
            heads.append(self._inflight_since)
        return min(heads, default=None)

    def _wake(self) -> None:
        self._wakeup.set()

    # ---- subclass hooks -------------------------------------------------------------------

    @abstractmethod
    def _make_batch(self, items: list[Item]) -> Batch:
        """Freeze buffered items into a batch; called once per batch (ids assigned here)."""

    @abstractmethod
    async def _write(self, batch: Batch) -> None:
        """Write one batch durably; raise to retry the same batch later."""

    @abstractmethod
    def _accepted_at(self, item: Item) -> float:
        """time.monotonic() at which `item` was accepted (items stay in acceptance order)."""

    def _batch_limit(self) -> int:
        return len(self._buffer)

    # ---- flushing -------------------------------------------------------------------------

    async def flush(self) -> int:
        """Write the in-flight batch (retry) or a new one from the buffer; returns items written.

        Raises what the write raised; the batch is kept for the next attempt.
        """
        async with self._flush_lock:
            written = 0
            while self._inflight is not None or self._buffer:
                if self._inflight is None:
                    take = self._batch_limit()
                    items = self._buffer[:take]
                    del self._buffer[:take]
                    size = self._bytes_of(items)
                    self._bytes -= size
                    self._inflight = self._make_batch(items)
                    self._inflight_items, self._inflight_bytes = len(items), size
                    self._inflight_since = self._accepted_at(items[0])
                count = self._inflight_items
                started = time.perf_counter()
                self._last_attempt = time.monotonic()
                try:
                    await self._write(self._inflight)
                except BaseException:
                    self.stats.failures += 1
                    self._record(time.perf_counter() - started, 0, ok=False)
                    raise
                self._inflight, self._inflight_items, self._inflight_bytes = None, 0, 0
                self.stats.flushed += count
                self.stats.last_success = time.monotonic()
                self._record(time.perf_counter() - started, count, ok=True)
                written += count
            return written

    def _bytes_of(self, items: list[Item]) -> int:
        """Bytes accounted to `items`; subclasses with a byte cap override this."""
        return 0

    def _record(self, duration: float, count: int, *, ok: bool) -> None:
        self.stats.flushes += 1
        self.stats.last_flush_duration_s = duration
        if len(self.stats.durations) < 10_000:
            self.stats.durations.append(duration)
        if self.on_flush is not None:
            self.on_flush(self.name, duration, count, ok)

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while not self._stopping:
            timeout = self._backoff_s or self.interval_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            self._wakeup.clear()
            if self._stopping:
                break
            try:
                await self.flush()
                self._backoff_s = 0.0
            except Exception as exc:  # retried with backoff, never lost
                self._backoff_s = min(MAX_BACKOFF_S, max(self.interval_s, self._backoff_s * 2))
                log.warning(
                    "%s flush failed (%s: %s); %d pending, retry in %.1fs",
                    self.name,
                    type(exc).__name__,
                    exc,
                    self.depth,
                    self._backoff_s,
                )

    async def stop(self, timeout_s: float) -> int:
        """Stop the loop and flush what is left within `timeout_s`; returns items still pending.

        The loop is asked to stop (never cancelled mid-write unless the budget runs out), so a
        batch being committed finishes cleanly; then what is left is flushed until the deadline.
        """
        deadline = time.monotonic() + timeout_s
        self._stopping = True
        self._wake()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        delay = 0.05
        while self.depth and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.flush(), max(0.01, deadline - time.monotonic()))
            except Exception as exc:
                log.warning("%s final flush attempt failed: %s", self.name, exc)
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 1.0)
        if self.depth:
            log.error("%s stopped with %d items not persisted", self.name, self.depth)
        return self.depth
