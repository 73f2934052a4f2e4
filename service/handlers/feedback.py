"""Feedback API: thumbs up/down on AI answers."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse

from service.contract import schemas
from service.contract.formats import iso
from service.ctx import ApiRequest
from service.http import ratelimit
from service.http.docs import doc
from service.http.responses import json_response
from service.http.sessions import session_of
from service.http.validation import decode_body
from service.insights import feedback_store
from service.telemetry import metrics


@doc(
    operation_id="createFeedback",
    summary="Thumbs up or down on an AI answer",
    body=schemas.FeedbackIn,
    ok=(201, schemas.FeedbackOut),
)
async def create_feedback(request: ApiRequest) -> HTTPResponse:
    body = decode_body(request, schemas.FeedbackIn)
    feedback_id, received_at = await feedback_store.record(
        feedback_store.NewFeedback(
            query=body.query,
            response_snippet=body.response_snippet,
            search_mode=body.search_mode,
            rating=body.rating,
            comment=body.comment,
            session_id=session_of(request),
        )
    )
    metrics.feedback(body.rating)
    out = schemas.FeedbackOut(feedback_id=feedback_id, received_at=iso(received_at))
    return json_response(out, 201)


def blueprint() -> Blueprint:
    bp = Blueprint("feedback")
    bp.add_route(
        create_feedback,
        "/feedback",
        methods=["POST"],
        name="create",
        ctx_rate_limit=ratelimit.FEEDBACK,
    )
    return bp
