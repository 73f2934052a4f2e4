"""Rate-limit counters in Valkey: limits' sliding window counter (its acquire script, its key
layout, its RedisStorage over redis-py), one script call per request, batched.

A sliding window counter is O(1) per check and two small keys per limit (a moving window
keeps a list of up to `limit` timestamps per key). One script call checks all limits of a
request in order (session, then IP) with limits' own acquire script, stops counting at the
first refusal, and reads back counts and TTLs of each window (what limits' window script
reads) for the X-RateLimit-* headers. Calls that arrive in the same event-loop turn share
one pipeline: a round trip's fixed cost (a send, a pooled connection, a wake-up) is paid
once per batch, not once per request. (All keys of one call must live on one Valkey: no
cluster mode.)
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any, cast

from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.storage.redis.bridge import RedisBridge
from limits.aio.storage.redis.redispy import RedispyBridge
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import NoScriptError

from aggregators import keys

KEY_PREFIX = keys.RATE_LIMIT_PREFIX  # every key name lives in aggregators/keys.py
# Own small pool with short timeouts: a slow or dead Valkey costs a request at most this long.
TIMEOUT_S = 0.5
POOL_SIZE = 16

Check = tuple[str, RateLimitItem, str]  # (scope, limit, identity), e.g. ("ip", 300/min, ip)

# limits' acquire script becomes a function of its own KEYS (previous, current window) and
# ARGV (limit, expiry in s, amount); this script calls it once per limit: KEYS and ARGV hold
# those for each limit in turn. Per limit it answers 1 counted, 0 refused, -1 not counted
# (an earlier limit refused), then count and TTL (ms) of the previous and current window.
ACQUIRE_ALL = (
    "local function acquire(KEYS, ARGV)\n"
    + RedisBridge.SCRIPT_ACQUIRE_SLIDING_WINDOW.decode()
    + """
end
local out, refused = {}, false
for i = 1, #KEYS / 2 do
  local keys = {KEYS[2 * i - 1], KEYS[2 * i]}
  local answer = -1
  if not refused then
    if acquire(keys, {ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]}) then
      answer = 1
    else
      answer, refused = 0, true
    end
  end
  out[#out + 1] = answer
  out[#out + 1] = redis.call('get', keys[1])
  out[#out + 1] = redis.call('pttl', keys[1])
  out[#out + 1] = redis.call('get', keys[2])
  out[#out + 1] = redis.call('pttl', keys[2])
end
return out
"""
)


@dataclass(frozen=True, slots=True)
class Window:
    """One limit after this request: allowed or not, and what the headers report."""

    scope: str
    counted: bool  # False: not counted, an earlier limit refused the request
    allowed: bool
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


def read_window(scope: str, item: RateLimitItem, answer: list[Any]) -> Window:
    """A Window from one limit's 5 numbers in ACQUIRE_ALL's answer."""
    expiry = float(item.get_expiry())
    p, c = int(answer[1] or 0), int(answer[3] or 0)
    pt, ct = max(0, int(answer[2] or 0)) / 1000, max(0, int(answer[4] or 0)) / 1000
    remaining = max(0, item.amount - (math.floor(p * pt / expiry) + c))
    allowed = answer[0] == 1
    retry = 0.0 if allowed else seconds_until_allowed(item.amount, expiry, p, pt, c, ct)
    reset = max(pt if p else 0.0, ct if c else 0.0)
    return Window(scope, answer[0] != -1, allowed, item.amount, remaining, reset, retry)


_Waiter = tuple[str, list[Check], "asyncio.Future[list[Window]]"]


class RateCounter:
    """Counts hits through limits' RedisStorage (redis-py), batching concurrent requests."""

    def __init__(self, valkey_url: str) -> None:
        self.pool = BlockingConnectionPool.from_url(
            valkey_url,
            max_connections=POOL_SIZE,
            timeout=TIMEOUT_S,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
        )
        # Connection settings come from the pool; the URI only selects the redis-py bridge.
        options: dict[str, Any] = {"connection_pool": self.pool}
        self.storage = RedisStorage(
            "async+redis://", implementation="redispy", key_prefix=KEY_PREFIX, **options
        )
        self._bridge = cast(RedispyBridge, self.storage.bridge)
        self._redis = cast(Redis, self._bridge.get_connection())
        self._script = self._redis.register_script(ACQUIRE_ALL)
        self._pending: list[_Waiter] = []
        self._batches: set[asyncio.Task[None]] = set()

    def keys(self, item: RateLimitItem, *identifiers: str) -> tuple[str, str]:
        """(previous, current) window keys, in limits' own layout for its sliding window."""
        current = self._bridge.prefixed_key(f"{{{item.key_for(*identifiers)}}}")
        return f"{current}/-1", current

    async def hit(self, category: str, checks: list[Check]) -> list[Window]:
        """Count one hit against each limit in order, up to the first that refuses; raises
        when Valkey cannot be asked."""
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
                    read_window(scope, item, answer[5 * i : 5 * i + 5])
                    for i, (scope, item, _) in enumerate(checks)
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
                for scope, item, identity in checks:
                    keys += self.keys(item, category, scope, identity)
                    args += (item.amount, item.get_expiry(), 1)
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
