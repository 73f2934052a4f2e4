"""The admin feedback list (filters, text search, keyset pages) and the review update.

Every filter combination is answered through an index: the page order (received_at,
feedback_id) descending has its own index, each equality filter leads one of its own
((status|rating|search_mode, received_at, feedback_id)), and `q` has trigram indexes on
query and comment. Keyset pagination (no OFFSET): a page costs the same at any depth.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from msgspec import UnsetType
from tortoise import connections

from service.contract import insights as shapes
from service.contract.formats import iso

COLUMNS = (
    "feedback_id, query, response_snippet, search_mode, rating, comment, status, note,"
    " received_at, reviewed_at, reviewed_by"
)


def like_pattern(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, with its own % _ \\ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def item_of(row: dict[str, Any]) -> shapes.FeedbackItem:
    reviewed_at = row["reviewed_at"]
    return shapes.FeedbackItem(
        id=row["feedback_id"],
        query=row["query"],
        snippet=row["response_snippet"],
        mode=row["search_mode"],
        rating=row["rating"],
        comment=row["comment"],
        status=row["status"],
        note=row["note"],
        received_at=iso(row["received_at"]),
        reviewed_at=None if reviewed_at is None else iso(reviewed_at),
        reviewed_by=row["reviewed_by"],
    )


def list_sql(q: shapes.FeedbackListQuery) -> tuple[str, list[Any]]:
    """The page statement for these filters (only the conditions given, so each plan fits)."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for column in ("rating", "search_mode", "status"):
        value = getattr(q, column)
        if value is not None:
            where.append(f"{column} = {arg(value)}")
    start, stop = q.bounds()
    if start is not None:
        where.append(f"received_at >= {arg(start)}")
    if stop is not None:
        where.append(f"received_at < {arg(stop)}")
    if q.q is not None:
        pattern = arg(like_pattern(q.q))
        where.append(f"(query ILIKE {pattern} OR comment ILIKE {pattern})")
    if q.cursor is not None:
        cursor = shapes.Cursor.decode(q.cursor)
        where.append(
            f"(received_at, feedback_id) < ({arg(cursor.received_at)}, {arg(cursor.feedback_id)})"
        )
    condition = " AND ".join(where) or "true"
    sql = (
        f"SELECT {COLUMNS} FROM feedback WHERE {condition}"  # noqa: S608 - constant fragments
        f" ORDER BY received_at DESC, feedback_id DESC LIMIT {arg(q.limit + 1)}"
    )
    return sql, args


async def list_feedback(q: shapes.FeedbackListQuery) -> shapes.FeedbackPage:
    sql, args = list_sql(q)
    rows = await connections.get("default").execute_query_dict(sql, args)
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = shapes.Cursor(last["received_at"], last["feedback_id"]).encode()
    return shapes.FeedbackPage(items=[item_of(r) for r in rows], next_cursor=next_cursor)


_REVIEW_SQL = f"""
UPDATE feedback
SET status = coalesce($2, status),
    note = CASE WHEN $3 THEN $4 ELSE note END,
    reviewed_by = $5, reviewed_by_player = $6, reviewed_at = $7
WHERE feedback_id = $1
RETURNING {COLUMNS}
"""  # noqa: S608 - COLUMNS is constant text


async def review(
    feedback_id: str,
    change: shapes.ReviewIn,
    *,
    reviewer_id: str,
    reviewer_name: str,
) -> shapes.FeedbackItem | None:
    """Set status and/or note, recording who and when; None when there is no such feedback."""
    if shapes.FEEDBACK_ID.fullmatch(feedback_id) is None:
        return None
    status = None if isinstance(change.status, UnsetType) else change.status
    note = None if isinstance(change.note, UnsetType) else change.note
    note_given = not isinstance(change.note, UnsetType)
    rows = await connections.get("default").execute_query_dict(
        _REVIEW_SQL,
        [
            feedback_id,
            status,
            note_given,
            note,
            reviewer_name,
            reviewer_id,
            datetime.now(UTC),
        ],
    )
    return item_of(rows[0]) if rows else None
