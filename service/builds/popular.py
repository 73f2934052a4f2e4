"""Popular builds: public builds ranked by the rating sum of a period's votes.

`all` reads the tallies on builds (builds_top_idx). A period aggregates build_votes, which is
too heavy for every request, so it is a CachedView in Valkey (one rebuild per period in the
cluster every VIEW_REFRESH_AFTER_S; votes show within VIEW_FRESH_S).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from redis.asyncio import Redis
from tortoise import connections

from aggregators import keys
from aggregators.views import CachedView, Snapshot
from models import Build
from service.builds.store import COLUMNS, to_item
from service.contract import schemas

PERIODS: dict[str, timedelta | None] = {
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
    "all": None,
}
MAX_LIMIT = 20  # the largest `limit` the API accepts: the view keeps that many

_PERIOD_SQL = f"""
SELECT {", ".join(f"b.{c}" for c in COLUMNS)}
FROM builds b
JOIN (
    SELECT build_id, sum(rating) AS period_sum, count(*) AS period_votes
    FROM build_votes
    WHERE created_at >= $1
    GROUP BY build_id
) v ON v.build_id = b.build_id
WHERE b.is_public AND ($2 OR NOT b.is_template)
ORDER BY v.period_sum DESC, v.period_votes DESC, b.created_at DESC, b.build_id DESC
LIMIT {MAX_LIMIT}
"""  # noqa: S608 - column names are constants

Items = list[schemas.BuildListItem]


class _Copy(msgspec.Struct):
    built_at: float
    builds: Items


_decode = msgspec.json.Decoder(_Copy).decode
_encode = msgspec.json.Encoder().encode


def make_view(valkey: Redis, fresh_s: float) -> CachedView[Items]:
    async def load(key: str) -> Snapshot[Items] | None:
        raw = await valkey.get(key)
        if raw is None:
            return None
        try:
            copy = _decode(raw)
        except msgspec.ValidationError:  # written by an older shape (a rolling deploy): a miss
            return None
        return Snapshot(copy.builds, copy.built_at)

    async def store(key: str, snapshot: Snapshot[Items]) -> None:
        copy = _Copy(built_at=snapshot.built_at, builds=snapshot.value)
        await valkey.set(key, _encode(copy), ex=keys.VIEW_KEEP_S)

    return CachedView(
        valkey,
        name="popular-builds",
        load=load,
        store=store,
        fresh_s=fresh_s,
        refresh_after_s=fresh_s / 2,
    )


async def rank(period: str, include_templates: bool, limit: int = MAX_LIMIT) -> Items:
    """The ranking straight from Postgres (what the view caches for a period)."""
    window = PERIODS[period]
    if window is None:
        qs = Build.filter(is_public=True, vote_count__gt=0)
        if not include_templates:
            qs = qs.filter(is_template=False)
        rows: list[dict[str, Any]] = (
            await qs.order_by("-rating_sum", "-vote_count", "-created_at", "-build_id")
            .limit(limit)
            .values(*COLUMNS)
        )
    else:
        since = datetime.now(UTC) - window
        rows = await connections.get("default").execute_query_dict(
            _PERIOD_SQL, [since, include_templates]
        )
    return [to_item(row) for row in rows[:limit]]


async def popular(q: schemas.PopularBuildsQuery, view: CachedView[Items]) -> schemas.PopularBuilds:
    if q.period == "all":  # indexed (builds_top_idx): no cache needed
        items = await rank(q.period, q.include_templates, q.limit)
    else:
        key = keys.popular_builds(q.period, q.include_templates)
        items = await view.get(key, lambda: rank(q.period, q.include_templates))
        items = items[: q.limit]
    return schemas.PopularBuilds(builds=items, period=q.period, count=len(items))
