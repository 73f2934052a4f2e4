"""Health endpoints: /health (details), /health/live, /health/ready."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sanic import Blueprint, HTTPResponse

from service import __version__
from service.ctx import ApiRequest, Ctx
from service.errors import ServiceUnavailable
from service.responses import json_response

CHECK_TIMEOUT_S = 2.0
READY_RETRY_S = 5


async def _timed(probe: Any) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure means "down" for a probe
        return {"ok": False, "latency_ms": None, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - start) * 1000, 2)}


async def check_postgres(ctx: Ctx) -> dict[str, Any]:
    return await _timed(ctx.db.execute_query("SELECT 1"))


async def check_valkey(ctx: Ctx) -> dict[str, Any]:
    return await _timed(ctx.valkey.ping())


def aggregator_status(ctx: Ctx) -> dict[str, Any]:
    aggregators = [a for a in (getattr(ctx, "search", None), getattr(ctx, "votes", None)) if a]
    ages = [a.last_flush_age_s() for a in aggregators]
    known = [age for age in ages if age is not None]
    return {
        "buffered": sum(a.depth for a in aggregators),
        "last_flush_age_s": round(max(known), 3) if known else None,
    }


async def health(request: ApiRequest) -> HTTPResponse:
    ctx = request.app.ctx
    postgres, valkey = await asyncio.gather(check_postgres(ctx), check_valkey(ctx))
    status = "ok" if postgres["ok"] and valkey["ok"] else "degraded" if postgres["ok"] else "down"
    body = {
        "status": status,
        "version": __version__,
        "uptime_seconds": round(time.monotonic() - ctx.started_at, 3),
        "checks": {"postgres": postgres, "valkey": valkey, "aggregators": aggregator_status(ctx)},
    }
    return json_response(body, 503 if status == "down" else 200)


async def live(request: ApiRequest) -> HTTPResponse:
    return json_response({"status": "ok"})


async def ready(request: ApiRequest) -> HTTPResponse:
    ctx = request.app.ctx
    if ctx.shutting_down:
        raise ServiceUnavailable("Worker is shutting down", retry_after=READY_RETRY_S)
    if not (await check_postgres(ctx))["ok"]:
        raise ServiceUnavailable("PostgreSQL is unreachable", retry_after=READY_RETRY_S)
    return json_response({"status": "ready"})


def blueprint() -> Blueprint:
    bp = Blueprint("health")
    bp.add_route(health, "/health", methods=["GET"], name="health")
    bp.add_route(live, "/health/live", methods=["GET"], name="live")
    bp.add_route(ready, "/health/ready", methods=["GET"], name="ready")
    return bp
