"""Search analytics API: record a search (buffered), popular queries (Valkey first)."""

from __future__ import annotations

import time
from typing import cast

from sanic import Blueprint, HTTPResponse

from aggregators.normalise import normalise_query
from aggregators.search import SearchEvent
from service.contract import schemas
from service.contract.errors import ServiceUnavailable, ValidationFailed
from service.contract.gamedata import SEARCH_MODES
from service.ctx import ApiRequest
from service.http import ratelimit
from service.http.client_ip import source_network_of
from service.http.docs import doc
from service.http.responses import json_response
from service.http.sessions import session_of
from service.http.validation import decode_body, parse_query
from service.telemetry import metrics


def mode_of(value: str) -> schemas.SearchMode:
    if value not in SEARCH_MODES:  # the table's CHECK-free column only ever gets these
        raise ValueError(f"unknown search mode {value!r}")
    return cast(schemas.SearchMode, value)


BUFFER_FULL_RETRY_S = 5
_RECORDED = json_response(schemas.Recorded(recorded=True), 201).body


@doc(
    operation_id="recordSearch",
    summary="Record a search (buffered, persisted by the next flush)",
    body=schemas.SearchEventIn,
    ok=(201, schemas.Recorded),
)
async def record_search(request: ApiRequest) -> HTTPResponse:
    body = decode_body(request, schemas.SearchEventIn)
    query_norm = normalise_query(body.query)
    if not query_norm:
        raise ValidationFailed.field("query", "must not be blank")
    event = SearchEvent(
        body.query,
        query_norm,
        body.search_mode,
        body.result_count,
        session_of(request),
        time.time(),
        source_network_of(request),
    )
    aggregator = request.app.ctx.search
    if request.app.ctx.settings.analytics_write_through:
        await aggregator.write_through(event)
    elif not aggregator.record(event):
        raise ServiceUnavailable(
            "Analytics buffer is full; retry later", retry_after=BUFFER_FULL_RETRY_S
        )
    metrics.searches.add(body.search_mode)
    return HTTPResponse(_RECORDED, status=201, content_type="application/json")


@doc(
    operation_id="popularQueries",
    summary="Most searched queries (grouped after normalisation, ranked by distinct client "
    "networks, then sessions, then count; hidden queries never appear)",
    query=schemas.PopularQueriesQuery,
    ok=(200, schemas.PopularQueries),
    errors=(422,),
)
async def popular_queries(request: ApiRequest) -> HTTPResponse:
    q = parse_query(request, schemas.PopularQueriesQuery)
    rows = await request.app.ctx.popular.top(q.days, q.search_mode, q.limit)
    queries = [
        schemas.PopularQuery(
            query=r.query,
            count=r.count,
            sessions=r.sessions,
            sources=r.sources,
            search_mode=mode_of(r.search_mode),
        )
        for r in rows
    ]
    return json_response(schemas.PopularQueries(queries=queries, period_days=q.days))


def blueprint() -> Blueprint:
    bp = Blueprint("analytics")
    bp.add_route(
        record_search,
        "/analytics/search",
        methods=["POST"],
        name="record",
        ctx_rate_limit=ratelimit.ANALYTICS,
    )
    bp.add_route(
        popular_queries, "/analytics/popular-queries", methods=["GET"], name="popular_queries"
    )
    return bp
