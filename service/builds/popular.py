"""Popular builds: public builds ranked by their votes, each source network counted once.

Ranking (one network cannot move it): a build's score is the sum, over the client networks
that voted for it in the period (IPv4 /24, IPv6 /48; build_votes.source_network), of that
network's mean rating; then distinct networks, then votes, then newest. Ten votes of 5 from
one network weigh as much as one vote of 5. Votes cast before networks were recorded count
each as its own network (their session).

The ranking aggregates build_votes, which is too heavy for every request, so it is a
CachedView in Valkey holding the ranked build ids (one rebuild per period in the cluster
every VIEW_REFRESH_AFTER_S; votes show within VIEW_FRESH_S). The builds themselves are read
from Postgres on every request by primary key (<= RANKED ids): a build made private or
deleted leaves the list at once on every worker and pod, and names and descriptions are
always current.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from redis.asyncio import Redis
from tortoise import connections

from aggregators import keys
from aggregators.views import CachedView, Snapshot
from service.builds.store import COLUMNS, to_item
from service.contract import schemas

PERIODS: dict[str, timedelta | None] = {
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
    "all": None,
}
MAX_LIMIT = 20  # the largest `limit` the API accepts
# Ids the view keeps: builds hidden or deleted after a rebuild drop out at read time, and
# the list stays full unless more than RANKED - MAX_LIMIT of them went within VIEW_FRESH_S.
RANKED = 2 * MAX_LIMIT

_RANK_SQL = """
WITH per_network AS (
    SELECT build_id, coalesce(source_network, 'session:' || session_id) AS network,
           avg(rating) AS rating, count(*) AS votes
    FROM build_votes
    {window}
    GROUP BY build_id, network
), per_build AS (
    SELECT build_id, sum(rating) AS score, count(*) AS networks, sum(votes) AS votes
    FROM per_network GROUP BY build_id
)
SELECT b.build_id
FROM per_build v JOIN builds b ON b.build_id = v.build_id
WHERE b.is_public AND ($1 OR NOT b.is_template)
ORDER BY v.score DESC, v.networks DESC, v.votes DESC, b.created_at DESC, b.build_id DESC
LIMIT $2
"""
_RANK_ALL_SQL = _RANK_SQL.format(window="")
_RANK_PERIOD_SQL = _RANK_SQL.format(window="WHERE created_at >= $3")
# Read time: the ranked builds as they are now, public ones only.
_ROWS_SQL = (
    f"SELECT {', '.join(COLUMNS)} FROM builds "  # noqa: S608 - column names are constants
    "WHERE build_id = ANY($1::text[]) AND is_public"
)

Ranked = list[str]  # build ids, best first


class _Copy(msgspec.Struct):
    built_at: float
    build_ids: Ranked


_decode = msgspec.json.Decoder(_Copy).decode
_encode = msgspec.json.Encoder().encode


def make_view(valkey: Redis, fresh_s: float) -> CachedView[Ranked]:
    async def load(key: str) -> Snapshot[Ranked] | None:
        raw = await valkey.get(key)
        if raw is None:
            return None
        try:
            copy = _decode(raw)
        except msgspec.ValidationError:  # written by an older shape (a rolling deploy): a miss
            return None
        return Snapshot(copy.build_ids, copy.built_at)

    async def store(key: str, snapshot: Snapshot[Ranked]) -> None:
        copy = _Copy(built_at=snapshot.built_at, build_ids=snapshot.value)
        await valkey.set(key, _encode(copy), ex=keys.VIEW_KEEP_S)

    return CachedView(
        valkey,
        name="popular-builds",
        load=load,
        store=store,
        fresh_s=fresh_s,
        refresh_after_s=fresh_s / 2,
    )


async def rank(period: str, include_templates: bool, limit: int = RANKED) -> Ranked:
    """The ranking straight from Postgres (what the view caches)."""
    window = PERIODS[period]
    db = connections.get("default")
    if window is None:
        rows = await db.execute_query_dict(_RANK_ALL_SQL, [include_templates, limit])
    else:
        since = datetime.now(UTC) - window
        rows = await db.execute_query_dict(_RANK_PERIOD_SQL, [include_templates, limit, since])
    return [row["build_id"] for row in rows]


async def current(build_ids: Ranked, limit: int) -> list[schemas.BuildListItem]:
    """The first `limit` of these builds that are public now, in ranking order."""
    if not build_ids:
        return []
    rows: list[dict[str, Any]] = await connections.get("default").execute_query_dict(
        _ROWS_SQL, [build_ids]
    )
    by_id = {row["build_id"]: row for row in rows}
    return [to_item(by_id[i]) for i in build_ids if i in by_id][:limit]


async def popular(q: schemas.PopularBuildsQuery, view: CachedView[Ranked]) -> schemas.PopularBuilds:
    key = keys.popular_builds(q.period, q.include_templates)
    ranked = await view.get(key, lambda: rank(q.period, q.include_templates))
    items = await current(ranked, q.limit)
    return schemas.PopularBuilds(builds=items, period=q.period, count=len(items))
