"""Popular builds: public builds ranked by their votes, each source network counted once.

Ranking (one network cannot move it): a build's score is the sum, over the client networks
that voted for it in the period (IPv4 /24, IPv6 /48; build_votes.source_network), of that
network's mean rating; then distinct networks, then votes, then newest. Ten votes of 5 from
one network weigh as much as one vote of 5. Votes cast before networks were recorded count
each as its own network. One index-only scan of build_votes_rank_idx per rebuild.

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
# A period's ranking is rebuilt at most every POPULAR_CACHE_TTL_S x this / 2 (and never
# older than POPULAR_CACHE_TTL_S x this): longer periods cost more to rank (seconds at 1M
# votes, see bench/results/plans.md) and move less. With 60 s: 1, 3, 10, 30 minutes.
SLOWER = {"day": 1.0, "week": 3.0, "month": 10.0, "all": 30.0}
MAX_LIMIT = 20  # the largest `limit` the API accepts
# Ids the view keeps: builds hidden or deleted after a rebuild drop out at read time, and
# the list stays full unless more than RANKED - MAX_LIMIT of them went within VIEW_FRESH_S.
RANKED = 2 * MAX_LIMIT

# Only the best `$3` builds by votes (ties included) are joined to builds: joining every
# voted build cost seconds at 1M votes. If hidden builds and templates leave fewer than
# `$2`, rank() retries with more candidates.
_RANK_SQL = """
WITH per_network AS (
    SELECT build_id, avg(rating) AS rating, count(*) AS votes
    FROM build_votes
    {window}
    GROUP BY build_id, coalesce(source_network, '#' || id)
), per_build AS (
    SELECT build_id, sum(rating) AS score, count(*) AS networks, sum(votes) AS votes
    FROM per_network GROUP BY build_id
), candidates AS MATERIALIZED (
    SELECT * FROM per_build ORDER BY score DESC, networks DESC, votes DESC
    FETCH FIRST $3 ROWS WITH TIES
)
SELECT r.build_id, c.considered
FROM (SELECT count(*) AS considered FROM candidates) c
LEFT JOIN LATERAL (
    SELECT b.build_id, v.score, v.networks, v.votes, b.created_at
    FROM candidates v JOIN builds b ON b.build_id = v.build_id
    WHERE b.is_public AND ($1 OR NOT b.is_template)
    ORDER BY v.score DESC, v.networks DESC, v.votes DESC, b.created_at DESC, b.build_id DESC
    LIMIT $2
) r ON true
ORDER BY r.score DESC, r.networks DESC, r.votes DESC, r.created_at DESC, r.build_id DESC
"""
_RANK_ALL_SQL = _RANK_SQL.format(window="")
_RANK_PERIOD_SQL = _RANK_SQL.format(window="WHERE created_at >= $4")
FIRST_CANDIDATES = 5 * RANKED
# Two hash aggregates over a period's votes (138k in a week at 1M votes): in memory.
RANK_SETTINGS = "SET LOCAL work_mem = '64MB'"
# Read time: the ranked builds as they are now, public ones only.
_ROWS_SQL = (
    f"SELECT {', '.join(COLUMNS)} FROM builds "  # noqa: S608 - column names are constants
    "WHERE build_id = ANY($1::text[]) AND is_public"
)

Ranked = list[str]  # build ids, best first


class _Copy(msgspec.Struct):
    built_at: float
    build_ids: Ranked


# Kept past the slowest freshness bound: a reader never finds the copy gone while fresh.
KEEP_S = max(keys.VIEW_KEEP_S, 2 * int(max(SLOWER.values())) * 60)
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
        await valkey.set(key, _encode(copy), ex=KEEP_S)

    return CachedView(
        valkey,
        name="popular-builds",
        load=load,
        store=store,
        fresh_s=fresh_s,
        refresh_after_s=fresh_s / 2,
    )


def rank_statement(period: str) -> tuple[str, list[timedelta]]:
    """The ranking SQL of a period ($1 include_templates, $2 limit, $3 candidates, $4 since)
    and its window (none for `all`)."""
    window = PERIODS[period]
    return (_RANK_ALL_SQL, []) if window is None else (_RANK_PERIOD_SQL, [window])


async def rank(period: str, include_templates: bool, limit: int = RANKED) -> Ranked:
    """The ranking straight from Postgres (what the view caches)."""
    sql, extra = rank_statement(period)
    candidates = FIRST_CANDIDATES
    db = connections.get("default")
    async with db.acquire_connection() as conn, conn.transaction():
        await conn.execute(RANK_SETTINGS)
        while True:
            since = [datetime.now(UTC) - w for w in extra]
            rows = await conn.fetch(sql, include_templates, limit, candidates, *since)
            ranked = [row["build_id"] for row in rows if row["build_id"] is not None]
            if len(ranked) >= limit or rows[0]["considered"] < candidates:
                return ranked  # full, or every voted build was a candidate
            candidates *= 4


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
    ranked = await view.get(
        key, lambda: rank(q.period, q.include_templates), slower=SLOWER[q.period]
    )
    items = await current(ranked, q.limit)
    return schemas.PopularBuilds(builds=items, period=q.period, count=len(items))
