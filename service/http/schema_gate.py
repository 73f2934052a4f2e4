"""API routes answer 503 service_unavailable while the database schema does not match the code.

The worker's SchemaGate (service.telemetry.schema) holds the cached comparison; this only
reads it, so a matched worker pays one attribute check per request. Operational routes
(/health*, /metrics, /docs) keep answering: readiness is how the balancer learns about it.
"""

from __future__ import annotations

import math

from service.contract.errors import ServiceUnavailable
from service.ctx import ApiRequest, App, Ctx

API_PREFIX = "/api/"


def retry_after_s(ctx: Ctx) -> int:
    return max(1, math.ceil(ctx.settings.schema_recheck_s))


async def _refuse_unmatched_schema(request: ApiRequest) -> None:
    ctx = request.app.ctx
    state = ctx.schema.state
    # "unchecked" = PostgreSQL did not answer the check: the request then meets the same
    # outage and answers the usual 503 (service.http.errors); readiness stays 503 until a
    # check has passed, so the balancer sends nothing here meanwhile.
    if not state.ok and state.status != "unchecked" and request.path.startswith(API_PREFIX):
        raise ServiceUnavailable(state.message, retry_after=retry_after_s(ctx))


def register(app: App) -> None:
    # Before sessions, auth and rate limits: nothing of a refused request touches the stores.
    app.middleware(_refuse_unmatched_schema, "request", priority=10_000)
