"""CachedView: a read model kept in Valkey, rebuilt from Postgres, never stampeding Postgres.

* A copy younger than `fresh_s` is served as is. Once it is `refresh_after_s` old, one worker
  in the whole cluster (Valkey SET NX lock) rebuilds it in the background while every worker
  keeps serving the copy, so readers never wait and the freshness bound holds.
* No copy at all (cold start, evicted): the reader rebuilds it; concurrent readers in one
  worker share that single rebuild (single flight).
* Valkey down: the worker serves its own last copy while it is fresh, otherwise rebuilds from
  Postgres (single flight), so Postgres sees one query per view per worker per `fresh_s`.
Views plug in how a copy is loaded from and stored to Valkey (sorted set, JSON...).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from aggregators import keys

T = TypeVar("T")
log = logging.getLogger("myashes.aggregators.views")
VALKEY_ERRORS = (RedisError, OSError)


@dataclass(frozen=True, slots=True)
class Snapshot(Generic[T]):
    value: T
    built_at: float  # epoch seconds (shared by every worker through Valkey)


class CachedView(Generic[T]):
    def __init__(
        self,
        valkey: Redis,
        *,
        name: str,
        load: Callable[[str], Awaitable[Snapshot[T] | None]],
        store: Callable[[str, Snapshot[T]], Awaitable[None]],
        fresh_s: float,
        refresh_after_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._valkey = valkey
        self.name = name
        self._load, self._store = load, store
        self.fresh_s, self.refresh_after_s = fresh_s, refresh_after_s
        self._clock = clock
        self._inflight: dict[str, asyncio.Future[Snapshot[T]]] = {}
        self._memo: dict[str, Snapshot[T]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self.rebuilds = 0  # Postgres computations done by this worker
        self.fallbacks = 0  # reads answered without Valkey

    async def get(self, key: str, compute: Callable[[], Awaitable[T]], *, slower: float = 1.0) -> T:
        """The copy of `key`; `slower` stretches this key's freshness bound (and refresh age)
        for a read model that is expensive to rebuild and changes slowly."""
        fresh_s, refresh_after_s = self.fresh_s * slower, self.refresh_after_s * slower
        try:
            copy = await self._load(key)
            valkey_up = True
        except VALKEY_ERRORS:
            copy, valkey_up = self._memo.get(key), False
            self.fallbacks += 1
        age = self._clock() - copy.built_at if copy is not None else None
        if copy is not None and age is not None and age < fresh_s:
            if valkey_up and age >= refresh_after_s:
                self._refresh_in_background(key, compute)
            return copy.value
        return (await self._single_flight(key, compute, store=valkey_up)).value

    async def _build(
        self, key: str, compute: Callable[[], Awaitable[T]], store: bool
    ) -> Snapshot[T]:
        built_at = self._clock()
        snapshot = Snapshot(await compute(), built_at)
        self.rebuilds += 1
        self._memo[key] = snapshot
        if store:
            try:
                await self._store(key, snapshot)
            except VALKEY_ERRORS as exc:
                log.warning("%s view %s not stored (Valkey: %s)", self.name, key, exc)
        return snapshot

    async def _single_flight(
        self, key: str, compute: Callable[[], Awaitable[T]], *, store: bool
    ) -> Snapshot[T]:
        future = self._inflight.get(key)
        if future is not None:
            return await asyncio.shield(future)
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            snapshot = await self._build(key, compute, store)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else has to
            raise
        else:
            future.set_result(snapshot)
            return snapshot
        finally:
            del self._inflight[key]

    def _refresh_in_background(self, key: str, compute: Callable[[], Awaitable[T]]) -> None:
        if key in self._refreshing or key in self._inflight:
            return
        task = asyncio.get_running_loop().create_task(self._refresh(key, compute))
        self._refreshing[key] = task
        task.add_done_callback(lambda _: self._refreshing.pop(key, None))

    async def _refresh(self, key: str, compute: Callable[[], Awaitable[T]]) -> None:
        lock = keys.view_lock(key)
        try:
            # One rebuild per view in the whole cluster; the lock expires on its own.
            if not await self._valkey.set(lock, "1", nx=True, ex=keys.VIEW_LOCK_TTL_S):
                return
            await self._single_flight(key, compute, store=True)
        except Exception as exc:  # the copy stays; the next reader tries again
            log.warning("%s view %s refresh failed: %s", self.name, key, exc)

    async def close(self) -> None:
        """Wait for background refreshes (they hold Postgres and Valkey connections)."""
        tasks = list(self._refreshing.values())
        if tasks:
            await asyncio.wait(tasks, timeout=5)
