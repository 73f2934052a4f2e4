"""Rate-limit counters in Valkey: a sliding window counter (service.http.sliding_window, vendored
from the `limits` library with its licence), one script call per request, batched.

A sliding window counter is O(1) per check and two small keys per limit (a moving window
keeps a list of up to `limit` timestamps per key). One script call checks all limits of a
request (player, session, IP) and counts the request against all of them only when every one
allows it: a refused request writes no key, so refused traffic cannot grow Valkey. Counts
and TTLs of each window come back for the X-RateLimit-* headers. Calls that arrive in the
same event-loop turn share one pipeline: a round trip's fixed cost (a send, a pooled
connection, a wake-up) is paid once per batch, not once per request. (All keys of one call
must live on one Valkey: no cluster mode.)
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import NoScriptError

from aggregators import keys
from service.http.sliding_window import SCRIPT

KEY_PREFIX = keys.RATE_LIMIT_PREFIX  # every key name lives in aggregators/keys.py
# Own small pool with short timeouts: a slow or dead Valkey costs a request at most this long.
TIMEOUT_S = 0.5
POOL_SIZE = 16


@dataclass(frozen=True, slots=True)
class Limit:
    """`amount` requests per `expiry_s` seconds."""

    amount: int
    expiry_s: int = 60


Check = tuple[str, Limit, str]  # (scope, limit, identity), e.g. ("ip", Limit(300), ip)


def window_keys(category: str, check: Check) -> tuple[str, str]:
    """(previous, current) window keys of one limit: myashes:rl:<category>:<scope>:<amount>/
    <expiry>:<identity>[:prev]. The amount is part of the name, so a changed limit starts a
    fresh window."""
    scope, limit, identity = check
    current = f"{KEY_PREFIX}:{category}:{scope}:{limit.amount}/{limit.expiry_s}:{identity}"
    return f"{current}:prev", current


@dataclass(frozen=True, slots=True)
class Window:
    """One limit after this request: allowed or not, and what the headers report."""

    scope: str
    counted: bool  # this request counts against the window (every limit allowed it)
    allowed: bool  # this limit allows the request (another may still refuse it)
    limit: int
    remaining: int
    reset_s: float  # until the whole quota is back
    retry_after_s: float  # until one more request is allowed (0 when allowed)


def seconds_until_allowed(limit: int, expiry: float, p: int, pt: float, c: int, ct: float) -> float:
    """Sliding window counter: weight = floor(p * pt / expiry) + c must drop below limit.

    p/c: counts of the previous/current window, pt/ct: their TTLs. The current window becomes
    the previous one when its TTL falls to `expiry` (the keys are set for 2 x expiry).
    """
    shift = max(0.0, ct - expiry) if ct > 0 else math.inf
    if c < limit:  # the previous window's share has to decay, or the windows shift first
        decay = max(0.0, pt - expiry * (limit - c) / p) if p else 0.0
        return min(decay, shift)
    return (0.0 if shift == math.inf else shift) + expiry * (1 - limit / c)


def read_window(scope: str, limit: Limit, answer: list[Any]) -> Window:
    """A Window from one limit's 5 numbers in the script's answer."""
    expiry = float(limit.expiry_s)
    p, c = int(answer[1] or 0), int(answer[3] or 0)
    pt, ct = max(0, int(answer[2] or 0)) / 1000, max(0, int(answer[4] or 0)) / 1000
    remaining = max(0, limit.amount - (math.floor(p * pt / expiry) + c))
    allowed = answer[0] != 0
    retry = 0.0 if allowed else seconds_until_allowed(limit.amount, expiry, p, pt, c, ct)
    reset = max(pt if p else 0.0, ct if c else 0.0)
    return Window(scope, answer[0] == 1, allowed, limit.amount, remaining, reset, retry)


_Waiter = tuple[str, list[Check], "asyncio.Future[list[Window]]"]


class RateCounter:
    """Counts hits with the vendored script over redis-py, batching concurrent requests."""

    def __init__(self, valkey_url: str) -> None:
        self.pool = BlockingConnectionPool.from_url(
            valkey_url,
            max_connections=POOL_SIZE,
            timeout=TIMEOUT_S,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
        )
        self._redis = Redis(connection_pool=self.pool)
        self._script = self._redis.register_script(SCRIPT)
        self._pending: list[_Waiter] = []
        self._batches: set[asyncio.Task[None]] = set()

    async def hit(self, category: str, checks: list[Check]) -> list[Window]:
        """Count one hit against every limit when all of them allow it (else against none);
        raises what Valkey raised when it could not be asked or answered with an error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Window]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._send)  # after every request of this loop turn has queued
        self._pending.append((category, checks, future))
        return await future

    def _send(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._answer(batch))
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _answer(self, batch: list[_Waiter]) -> None:
        try:
            answers = await self._execute(batch)
            results = [
                [
                    read_window(scope, limit, answer[5 * i : 5 * i + 5])
                    for i, (scope, limit, _) in enumerate(checks)
                ]
                for (_, checks, _), answer in zip(batch, answers, strict=True)
            ]
        except BaseException as exc:  # every waiter gets an error (and fails open), none hangs
            error = exc if isinstance(exc, Exception) else ConnectionError("rate counter closed")
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), windows in zip(batch, results, strict=True):
            if not future.done():  # a waiter whose client went away is cancelled
                future.set_result(windows)

    async def _execute(self, batch: list[_Waiter]) -> list[Any]:
        redis = self._redis
        for attempt in (1, 2):
            pipe = redis.pipeline(transaction=False)
            for category, checks, _ in batch:
                keys: list[str] = []
                args: list[int] = []
                for check in checks:
                    keys += window_keys(category, check)
                    args += (check[1].amount, check[1].expiry_s, 1)
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            try:
                return await pipe.execute()
            except NoScriptError:  # a new or restarted Valkey: load the script, send again
                if attempt == 2:
                    raise
                await redis.script_load(self._script.script)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for task in list(self._batches):
            task.cancel()
        await asyncio.gather(*self._batches, return_exceptions=True)
        await self.pool.disconnect()
