"""Content gaps served from Valkey (a CachedView, like popular queries): ranking by distinct
sessions costs O(sessions) over a long window, so one worker in the cluster rebuilds each
window's top CONTENT_GAPS_TOP_N at most every fresh_s / 2 and every reader gets that copy
(a search shows within the flush interval + fresh_s, as the contract allows)."""

from __future__ import annotations

import msgspec
from redis.asyncio import Redis

from aggregators import keys
from aggregators.views import CachedView, Snapshot
from service.contract import insights as shapes
from service.insights import reports

Gaps = list[shapes.ContentGap]


class _Copy(msgspec.Struct):
    built_at: float
    items: Gaps


_decode = msgspec.json.Decoder(_Copy).decode
_encode = msgspec.json.Encoder().encode


def make_view(valkey: Redis, fresh_s: float) -> CachedView[Gaps]:
    async def load(key: str) -> Snapshot[Gaps] | None:
        raw = await valkey.get(key)
        if raw is None:
            return None
        try:
            copy = _decode(raw)
        except msgspec.ValidationError:  # written by an older shape (a rolling deploy): a miss
            return None
        return Snapshot(copy.items, copy.built_at)

    async def store(key: str, snapshot: Snapshot[Gaps]) -> None:
        copy = _Copy(built_at=snapshot.built_at, items=snapshot.value)
        await valkey.set(key, _encode(copy), ex=keys.VIEW_KEEP_S)

    return CachedView(
        valkey,
        name="content-gaps",
        load=load,
        store=store,
        fresh_s=fresh_s,
        refresh_after_s=fresh_s / 2,
    )


async def content_gaps(view: CachedView[Gaps], days: int, limit: int) -> shapes.ContentGaps:
    async def compute() -> Gaps:
        return (await reports.content_gaps(days, keys.CONTENT_GAPS_TOP_N)).items

    items = await view.get(keys.content_gaps(days), compute)
    return shapes.ContentGaps(items=items[:limit])
