"""GET /metrics: Prometheus text format, the sum over every worker of the process."""

from __future__ import annotations

import asyncio

from sanic import Blueprint, HTTPResponse

from service.ctx import ApiRequest
from service.http.docs import doc
from service.telemetry import metrics


@doc(
    operation_id="metrics",
    summary="Prometheus metrics, summed over every worker of the process",
    ok=(200, str),
    media_type="text/plain",
    limited=False,
    auth=None,
)
async def scrape(request: ApiRequest) -> HTTPResponse:
    # No I/O to the stores: dependency gauges come from each worker's background check.
    ctx = request.app.ctx
    if ctx.metrics is not None:
        ctx.metrics.sync()  # this worker's numbers are exact; the others' are <= 1 s old
    body = await asyncio.to_thread(metrics.render)  # file reads: off the event loop
    return HTTPResponse(body, content_type=metrics.CONTENT_TYPE)


def blueprint() -> Blueprint:
    bp = Blueprint("metrics")
    # Operational route: kept out of the traffic metrics (service.http.observe).
    bp.add_route(scrape, "/metrics", methods=["GET"], name="scrape", ctx_operational=True)
    return bp
