"""Read-side build queries: the filtered/sorted list and the templates."""

from __future__ import annotations

from typing import Any

from tortoise import connections
from tortoise.filters import escape_like

from models import Build
from service.builds.store import COLUMNS, to_build, to_item
from service.contract import schemas
from service.contract.gamedata import classes_matching

# Every order ends with build_id: unique, so pages never repeat or skip a build.
ORDERS: dict[str, str] = {
    "newest": "created_at DESC, build_id DESC",
    "rating": "rating_avg DESC, vote_count DESC, build_id DESC",
    "popular": "vote_count DESC, created_at DESC, build_id DESC",
}
# The same expression as the trigram indexes (builds_name_trgm_idx, builds_description_trgm_idx).
_CONTAINS = "UPPER(CAST({column} AS VARCHAR)) LIKE UPPER({pattern}) ESCAPE '\\'"


class _Params:
    """Positional parameters ($1, $2...) for one statement."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


def _where(q: schemas.BuildListQuery, p: _Params) -> str:
    """The list's filters, ANDed. Every column here has an index (see the migrations)."""
    clauses = ["is_public"]
    if q.class_name is not None:
        clauses.append(f"class_name = ANY({p(classes_matching(q.class_name))}::text[])")
    for column in ("primary_archetype", "secondary_archetype", "race"):
        value = getattr(q, column)
        if value is not None:
            clauses.append(f"{column} = {p(value)}")
    if q.is_template is not None:
        clauses.append(f"is_template = {p(q.is_template)}")
    if q.search is not None:
        pattern = p(f"%{escape_like(q.search)}%")
        name = _CONTAINS.format(column="name", pattern=pattern)
        description = _CONTAINS.format(column="description", pattern=pattern)
        classes = f"class_name = ANY({p(classes_matching(q.search))}::text[])"
        clauses.append(f"({name} OR {description} OR {classes})")
    return " AND ".join(clauses)


async def list_builds(q: schemas.BuildListQuery) -> schemas.BuildList:
    """One count and one page, as plain SQL: the queryset builder cost more than both
    queries (measured 0.7k vs 1.4k req/s per worker)."""
    db = connections.get("default")
    p = _Params()
    where = _where(q, p)
    # Only constant SQL and $n placeholders are formatted in; every value is a parameter.
    count_sql = f"SELECT count(*) AS n FROM builds WHERE {where}"  # noqa: S608
    counted = await db.execute_query_dict(count_sql, p.values)
    total = int(counted[0]["n"])
    rows: list[dict[str, Any]] = []
    if (q.page - 1) * q.limit < total:
        limit, offset = p(q.limit), p((q.page - 1) * q.limit)
        rows = await db.execute_query_dict(
            f"SELECT {', '.join(COLUMNS)} FROM builds WHERE {where} "  # noqa: S608
            f"ORDER BY {ORDERS[q.sort]} LIMIT {limit} OFFSET {offset}",
            p.values,
        )
    return schemas.BuildList(
        builds=[to_item(row) for row in rows],
        total=total,
        page=q.page,
        limit=q.limit,
        has_more=(q.page - 1) * q.limit + len(rows) < total,
    )


async def templates(website_url: str) -> schemas.TemplateList:
    rows: list[dict[str, Any]] = (
        await Build.filter(is_template=True).order_by("name", "build_id").values(*COLUMNS)
    )
    return schemas.TemplateList(templates=[to_build(r, website_url) for r in rows], count=len(rows))
