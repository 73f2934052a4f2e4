"""GET /metrics: Prometheus text format, the sum over every worker of the process."""

from __future__ import annotations

import asyncio

from sanic import Blueprint, HTTPResponse

from service.ctx import ApiRequest
from service.handlers.health import check_postgres, check_valkey
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
    ctx = request.app.ctx
    # A scrape is also a dependency probe: up/down and latency are fresh at every scrape.
    postgres, valkey = await asyncio.gather(check_postgres(ctx), check_valkey(ctx))
    metrics.dependencies_checked({"postgres": postgres, "valkey": valkey})
    if ctx.metrics is not None:
        ctx.metrics.sync()  # this worker's numbers are exact; the others' are <= 1 s old
    body = await asyncio.to_thread(metrics.render)  # file reads: off the event loop
    return HTTPResponse(body, content_type=metrics.CONTENT_TYPE)


def blueprint() -> Blueprint:
    bp = Blueprint("metrics")
    bp.add_route(scrape, "/metrics", methods=["GET"], name="scrape")
    return bp
