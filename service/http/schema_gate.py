"""API routes answer 503 service_unavailable while the database schema does not match the code.

The worker's SchemaGate (service.telemetry.schema) holds the cached comparison; this only
reads it, so a matched worker pays one attribute check per request. Operational routes
(/health*, /metrics, /docs) keep answering: readiness is how the balancer learns about it.
"""

from __future__ import annotations

import math

from service.contract.errors import ServiceUnavailable
from service.ctx import ApiRequest, App, Ctx
from service.http.errors import DEPENDENCY_DOWN_MESSAGE, DEPENDENCY_RETRY_AFTER_S

API_PREFIX = "/api/"


def retry_after_s(ctx: Ctx) -> int:
    return max(1, math.ceil(ctx.settings.schema_recheck_s))


async def _refuse_unmatched_schema(request: ApiRequest) -> None:
    ctx = request.app.ctx
    if ctx.schema.ok or not request.path.startswith(API_PREFIX):
        return
    state = ctx.schema.state
    if state.status == "unchecked":
        # PostgreSQL could not be asked: to a client that is a store outage like any other
        # (the same answer a handler's failed query gives); readiness carries the detail.
        raise ServiceUnavailable(DEPENDENCY_DOWN_MESSAGE, retry_after=DEPENDENCY_RETRY_AFTER_S)
    raise ServiceUnavailable(state.message, retry_after=retry_after_s(ctx))


def register(app: App) -> None:
    # Before sessions, auth and rate limits: nothing of a refused request touches the stores.
    app.middleware(_refuse_unmatched_schema, "request", priority=10_000)
