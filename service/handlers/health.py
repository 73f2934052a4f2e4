"""Health endpoints: /health (details), /health/live, /health/ready."""

from __future__ import annotations

import os
import time
from typing import Any

from sanic import Blueprint, HTTPResponse

from service import __version__
from service.contract import schemas
from service.contract.errors import ServiceUnavailable
from service.ctx import ApiRequest, App, Ctx
from service.http import schema_gate
from service.http.docs import doc
from service.http.responses import json_response

READY_RETRY_S = 5


def aggregator_status(ctx: Ctx) -> dict[str, Any]:
    """Events not yet durable, and how long the oldest of them has waited (0 when none)."""
    aggregators = [a for a in (getattr(ctx, "search", None), getattr(ctx, "votes", None)) if a]
    age = max((a.oldest_pending_age_s() for a in aggregators), default=0.0)
    return {"buffered": sum(a.depth for a in aggregators), "last_flush_age_s": round(age, 3)}


def rate_limit_status(ctx: Ctx) -> dict[str, Any]:
    """Whether this worker's rate limiter counts requests (enforced null: limits are off)."""
    if not ctx.settings.rate_limit_enabled:
        return {"enforced": None}
    problem = ctx.rate_limit_problem
    return {"enforced": True} if problem is None else {"enforced": False, "error": problem}


@doc(
    operation_id="health",
    summary="Dependency checks: ok, degraded (Valkey down or rate limits not enforced) or "
    "down (Postgres down, 503)",
    ok=(200, schemas.Health),
    bodies={503: schemas.Health},
    limited=False,
    auth=None,
)
async def health(request: ApiRequest) -> HTTPResponse:
    ctx = request.app.ctx
    checks = await ctx.dependencies.check()  # fresh: this route is rate-limited
    postgres, valkey = checks["postgres"].ok, checks["valkey"].ok
    limits = rate_limit_status(ctx)
    healthy = valkey and limits["enforced"] is not False
    status = "ok" if postgres and healthy else "degraded" if postgres else "down"
    body = {
        "status": status,
        "version": __version__,
        "uptime_seconds": round(time.monotonic() - ctx.started_at, 3),
        "checks": {
            "postgres": checks["postgres"].body(),
            "valkey": checks["valkey"].body(),
            "aggregators": aggregator_status(ctx),
            "rate_limits": limits,
        },
    }
    return json_response(body, 503 if status == "down" else 200)


@doc(
    operation_id="liveness",
    summary="200 while every worker of the process serves; 503 once one has died",
    ok=(200, schemas.Status),
    limited=False,
    auth=None,
)
async def live(request: ApiRequest) -> HTTPResponse:
    dead = dead_workers(request.app)
    if dead and not request.app.ctx.shutting_down:
        # Sanic does not replace a worker that died (kill -9, OOM): let Kubernetes restart
        # the pod, whose SIGTERM flushes what the surviving workers hold.
        raise ServiceUnavailable(f"Worker(s) {', '.join(dead)} died", retry_after=READY_RETRY_S)
    return json_response({"status": "ok"})


def _process_gone(pid: int) -> bool:
    """True if `pid` no longer runs (exited, or a zombie its parent has not reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b") ", 1)[1][:1] in (b"Z", b"X")
    except FileNotFoundError:
        return True
    except OSError:  # no procfs: fall back to a signal-0 probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def dead_workers(app: App) -> list[str]:
    """Names of this pod's server workers whose process is gone."""
    multiplexer = getattr(app, "multiplexer", None)
    if multiplexer is None:
        return []
    return sorted(
        name
        for name, state in multiplexer.workers.items()
        if state.get("server") and state.get("pid") and _process_gone(int(state["pid"]))
    )


def all_workers_started(app: App) -> bool:
    """True once every server worker of this process has acknowledged its start.

    Until then a pod must not take traffic: Sanic's main process is still waiting for the
    acks, and a SIGTERM in that window ends with it killing workers that may hold events.
    """
    multiplexer = getattr(app, "multiplexer", None)
    if multiplexer is None:  # ASGI, or a single process without the worker manager
        return True
    servers = [state for state in multiplexer.workers.values() if state.get("server")]
    return bool(servers) and all(state.get("state") == "ACKED" for state in servers)


@doc(
    operation_id="readiness",
    summary="503 while workers start, Postgres is unreachable, the database schema does not "
    "match the code (missing, behind or ahead: the message names the fix) or the worker stops",
    ok=(200, schemas.Status),
    limited=False,
    auth=None,
)
async def ready(request: ApiRequest) -> HTTPResponse:
    ctx = request.app.ctx
    if ctx.shutting_down:
        raise ServiceUnavailable("Worker is shutting down", retry_after=READY_RETRY_S)
    if not all_workers_started(request.app):
        raise ServiceUnavailable("Workers are still starting", retry_after=1)
    if not ctx.dependencies.up("postgres"):  # the worker's background check: no I/O here
        raise ServiceUnavailable("PostgreSQL is unreachable", retry_after=READY_RETRY_S)
    if not ctx.schema.ok:  # cached; the worker rechecks every SCHEMA_RECHECK_S meanwhile
        raise ServiceUnavailable(
            ctx.schema.state.message, retry_after=schema_gate.retry_after_s(ctx)
        )
    return json_response({"status": "ready"})


def blueprint() -> Blueprint:
    bp = Blueprint("health")
    # Operational routes: kept out of the traffic metrics (service.http.observe).
    bp.add_route(health, "/health", methods=["GET"], name="health", ctx_operational=True)
    bp.add_route(live, "/health/live", methods=["GET"], name="live", ctx_operational=True)
    bp.add_route(ready, "/health/ready", methods=["GET"], name="ready", ctx_operational=True)
    return bp
