"""Admin API (role admin): answer quality and search insights, the review workflow, the CSV
export. Every route asks service.auth.guard first: 401 without a token, 403 without the role.
The reads are API GETs, so they are rate limited like every other GET."""

from __future__ import annotations

from datetime import UTC, datetime

from sanic import Blueprint, HTTPResponse
from sanic_ext.extensions.openapi import openapi
from sanic_ext.extensions.openapi.definitions import Parameter

from service.auth.guard import require_admin
from service.contract import insights as shapes
from service.contract.errors import AppError
from service.ctx import ApiRequest
from service.http.docs import _schema, doc
from service.http.responses import json_response
from service.http.validation import decode_body, parse_query
from service.insights import export, feedback_list, reports, views


class FeedbackNotFound(AppError):
    code, status = "not_found", 404

    def __init__(self, feedback_id: str) -> None:
        super().__init__(f"Feedback {feedback_id} not found")


@doc(
    operation_id="adminListFeedback",
    summary="Feedback, newest first: filters, text search (q), cursor pages",
    query=shapes.FeedbackListQuery,
    ok=(200, shapes.FeedbackPage),
    errors=(422,),
    auth="admin",
)
async def list_feedback(request: ApiRequest) -> HTTPResponse:
    require_admin(request)
    q = parse_query(request, shapes.FeedbackListQuery)
    return json_response(await feedback_list.list_feedback(q))


@doc(
    operation_id="adminReviewFeedback",
    summary="Review one feedback item: status and/or note; records who and when",
    body=shapes.ReviewIn,
    ok=(200, shapes.FeedbackItem),
    errors=(404,),
    limited=False,
    auth="admin",
)
@openapi.parameter(
    parameter=Parameter(
        "feedback_id",
        _schema(type="string", pattern=r"^f_[0-9a-f]{8}$"),
        "path",
        required=True,
        description="Feedback id: f_ + 8 lowercase hex",
    )
)
async def review_feedback(request: ApiRequest, feedback_id: str) -> HTTPResponse:
    admin = require_admin(request)
    change = decode_body(request, shapes.ReviewIn)
    item = await feedback_list.review(
        feedback_id, change, reviewer_id=admin.id, reviewer_name=admin.display_name
    )
    if item is None:
        raise FeedbackNotFound(feedback_id)
    return json_response(item)


@doc(
    operation_id="adminFeedbackSummary",
    summary="Satisfaction totals, per mode, and per UTC day and mode (from the daily rollup)",
    query=shapes.DaysQuery,
    ok=(200, shapes.Summary),
    errors=(422,),
    auth="admin",
)
async def summary(request: ApiRequest) -> HTTPResponse:
    require_admin(request)
    q = parse_query(request, shapes.DaysQuery)
    return json_response(await reports.summary(q.days))


@doc(
    operation_id="adminFeedbackPatterns",
    summary="Normalised queries with the most thumbs-down (then by down rate)",
    description="Served from a copy in Valkey rebuilt in the background (feedback shows "
    "within 60 s).",
    query=shapes.TopQuery,
    ok=(200, shapes.Patterns),
    errors=(422,),
    auth="admin",
)
async def patterns(request: ApiRequest) -> HTTPResponse:
    require_admin(request)
    q = parse_query(request, shapes.TopQuery)
    found = await views.patterns(request.app.ctx.feedback_patterns, q.days, q.limit)
    return json_response(found)


@doc(
    operation_id="adminContentGaps",
    summary="Queries searched with no results, by distinct sessions, then searches",
    description="Served from a copy in Valkey rebuilt in the background (a search shows "
    "within the flush interval + 60 s).",
    query=shapes.GapsQuery,
    ok=(200, shapes.ContentGaps),
    errors=(422,),
    auth="admin",
)
async def content_gaps(request: ApiRequest) -> HTTPResponse:
    require_admin(request)
    q = parse_query(request, shapes.GapsQuery)
    gaps = await views.content_gaps(request.app.ctx.content_gaps, q.days, q.limit)
    return json_response(gaps)


@doc(
    operation_id="adminExportFeedback",
    summary="Feedback as CSV (RFC 4180, UTF-8, header row), streamed; from/to filter",
    query=shapes.ExportQuery,
    ok=(200, str),
    media_type="text/csv",
    errors=(422,),
    auth="admin",
)
async def export_feedback(request: ApiRequest) -> None:
    require_admin(request)
    start, stop = parse_query(request, shapes.ExportQuery).bounds()
    chunks = export.export_csv(start, stop)
    try:
        # The first chunk (header row) comes after the cursor opened: a store error before
        # it is still an ordinary error response.
        first = await anext(chunks)
        today = datetime.now(UTC).date().isoformat()
        response = await request.respond(
            content_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="feedback-{today}.csv"',
                "Cache-Control": "no-store",
            },
        )
        await response.send(first)
        async for chunk in chunks:
            await response.send(chunk)
        await response.eof()
    finally:
        await chunks.aclose()


def blueprint() -> Blueprint:
    bp = Blueprint("admin", url_prefix="/admin")
    bp.add_route(list_feedback, "/feedback", methods=["GET"], name="feedback")
    bp.add_route(summary, "/feedback/summary", methods=["GET"], name="summary")
    bp.add_route(patterns, "/feedback/patterns", methods=["GET"], name="patterns")
    bp.add_route(export_feedback, "/feedback/export.csv", methods=["GET"], name="export")
    bp.add_route(review_feedback, "/feedback/<feedback_id:str>", methods=["PATCH"], name="review")
    bp.add_route(content_gaps, "/insights/content-gaps", methods=["GET"], name="content_gaps")
    return bp
