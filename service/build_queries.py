"""Read-side build queries: the filtered/sorted list and the templates."""

from __future__ import annotations

from typing import Any

from tortoise.expressions import Q, RawSQL
from tortoise.queryset import QuerySet

from models import Build
from service import schemas
from service.builds import COLUMNS, to_build, to_item
from service.gamedata import classes_matching

# Every order ends with build_id: unique, so pages never repeat or skip a build.
ORDERS: dict[str, tuple[str, ...]] = {
    "newest": ("-created_at", "-build_id"),
    "rating": ("-rating_avg", "-vote_count", "-build_id"),
    "popular": ("-vote_count", "-created_at", "-build_id"),
}


def _filtered(q: schemas.BuildListQuery) -> QuerySet[Build]:
    qs = Build.filter(is_public=True)
    if q.class_name is not None:
        qs = qs.filter(class_name__in=classes_matching(q.class_name))
    if q.primary_archetype is not None:
        qs = qs.filter(primary_archetype=q.primary_archetype)
    if q.secondary_archetype is not None:
        qs = qs.filter(secondary_archetype=q.secondary_archetype)
    if q.race is not None:
        qs = qs.filter(race=q.race)
    if q.is_template is not None:
        qs = qs.filter(is_template=q.is_template)
    if q.search is not None:
        qs = qs.filter(
            Q(name__icontains=q.search)
            | Q(description__icontains=q.search)
            | Q(class_name__in=classes_matching(q.search))
        )
    return qs


async def list_builds(q: schemas.BuildListQuery) -> schemas.BuildList:
    qs = _filtered(q)
    total = await qs.count()
    page = (
        qs.annotate(rating_avg=RawSQL('"rating_avg"'))
        .order_by(*ORDERS[q.sort])
        .offset((q.page - 1) * q.limit)
        .limit(q.limit)
    )
    rows: list[dict[str, Any]] = await page.values(*COLUMNS)
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
