"""Content gaps and feedback patterns served from Valkey (CachedViews, like popular queries):
ranking over a long window reads many rollup rows (and, for gaps, counts distinct sessions),
so one worker in the cluster rebuilds each window's top N at most every fresh_s / 2 and every
reader gets that copy (a search shows within the flush interval + fresh_s, as the contract
allows for content gaps; feedback within fresh_s)."""

from __future__ import annotations

from typing import Any

import msgspec
from redis.asyncio import Redis

from aggregators import keys
from aggregators.views import CachedView, Snapshot
from service.contract import insights as shapes
from service.insights import reports

Gaps = list[shapes.ContentGap]
Worst = list[shapes.Pattern]


class _GapsCopy(msgspec.Struct):
    built_at: float
    items: Gaps


class _PatternsCopy(msgspec.Struct):
    built_at: float
    items: Worst


def _make(
    valkey: Redis, fresh_s: float, name: str, shape: type[_GapsCopy] | type[_PatternsCopy]
) -> CachedView[Any]:
    decode = msgspec.json.Decoder(shape).decode
    encode = msgspec.json.Encoder().encode

    async def load(key: str) -> Snapshot[Any] | None:
        raw = await valkey.get(key)
        if raw is None:
            return None
        try:
            copy = decode(raw)
        except msgspec.ValidationError:  # written by an older shape (a rolling deploy): a miss
            return None
        return Snapshot(copy.items, copy.built_at)

    async def store(key: str, snapshot: Snapshot[Any]) -> None:
        copy = shape(built_at=snapshot.built_at, items=snapshot.value)
        await valkey.set(key, encode(copy), ex=keys.VIEW_KEEP_S)

    return CachedView(
        valkey, name=name, load=load, store=store, fresh_s=fresh_s, refresh_after_s=fresh_s / 2
    )


def make_view(valkey: Redis, fresh_s: float) -> CachedView[Gaps]:
    view: CachedView[Gaps] = _make(valkey, fresh_s, "content-gaps", _GapsCopy)
    return view


def make_patterns_view(valkey: Redis, fresh_s: float) -> CachedView[Worst]:
    view: CachedView[Worst] = _make(valkey, fresh_s, "feedback-patterns", _PatternsCopy)
    return view


async def patterns(view: CachedView[Worst], days: int, limit: int) -> shapes.Patterns:
    async def compute() -> Worst:
        return (await reports.patterns(days, keys.PATTERNS_TOP_N)).items

    items = await view.get(keys.feedback_patterns(days), compute)
    return shapes.Patterns(items=items[:limit])


async def content_gaps(view: CachedView[Gaps], days: int, limit: int) -> shapes.ContentGaps:
    async def compute() -> Gaps:
        return (await reports.content_gaps(days, keys.CONTENT_GAPS_TOP_N)).items

    items = await view.get(keys.content_gaps(days), compute)
    return shapes.ContentGaps(items=items[:limit])
