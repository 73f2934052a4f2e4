"""Observation: per request a request id (accepted or generated, always echoed), one JSON
access line and the HTTP metrics.

Two middlewares in total, chosen once at registration: with METRICS_ENABLED=false the metrics
code is not on the request path at all (DESIGN rule 9: measure before adding to the hot path).
Operational routes (declared with `ctx_operational=True`: /metrics, /health, /health/*) get
their access line but stay out of the traffic metrics: scrapes and probes are not load, and
the error/latency alerts and the KEDA trigger read those metrics as load. Every route's
request counter exists from the worker's start for each status class alerts select on.
"""

from __future__ import annotations

import re
import secrets
import time

from sanic.response import BaseHTTPResponse
from sanic_routing import Route

from service.ctx import ApiRequest, App
from service.http.sessions import session_of
from service.telemetry import metrics
from service.telemetry.logs import REQUEST_ID, AccessLog, hash_session

HEADER = "X-Request-ID"
# Ids from proxies and clients: UUIDs, hex, base64(url) tokens. Anything else is replaced.
_VALID_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
# Far above the real middlewares' priorities: first on the way in, last on the way out.
PRIORITY = 1_000_000
CLIENT_CLOSED = 499  # nginx's "client closed request": not a server error

access_log = AccessLog("myashes.access")


def request_id_of(request: ApiRequest) -> str:
    """The request id in use (resolved once): the client's X-Request-ID when valid, else new."""
    ctx = request.ctx
    request_id: str | None = getattr(ctx, "request_id", None)
    if request_id is None:
        sent = request.headers.get(HEADER)
        request_id = sent if sent is not None and _VALID_ID.fullmatch(sent) else new_request_id()
        ctx.request_id = request_id
    return request_id


def new_request_id() -> str:
    return secrets.token_hex(16)


def route_of(request: ApiRequest) -> str:
    """The route template ("/api/v1/builds/<build_id:str>"), never the raw path."""
    route = request.route
    return "unmatched" if route is None else "/" + route.path


def is_operational(route: Route | None) -> bool:
    return route is not None and getattr(route.ctx, "operational", False) is True


async def _init_series(app: App) -> None:
    """Per worker, before serving: every traffic route's counters, at 0 for each status class."""
    metrics.http.init_series(
        (
            (method, route.path)
            for route in app.router.routes
            if not is_operational(route)
            for method in sorted(route.methods)
        ),
        metrics.STATUS_CLASSES,
    )


def _elapsed_s(request: ApiRequest) -> float:
    started: float | None = getattr(request.ctx, "started", None)
    return 0.0 if started is None else time.perf_counter() - started


async def _begin(request: ApiRequest) -> None:
    request.ctx.started = time.perf_counter()
    REQUEST_ID.set(request_id_of(request))


def _finish(request: ApiRequest, response: BaseHTTPResponse) -> tuple[float, int]:
    """Echo the request id and write the access line; returns (duration, status)."""
    elapsed = _elapsed_s(request)
    request_id = request_id_of(request)
    response.headers[HEADER] = request_id
    info = request.conn_info
    # The client hung up first: Sanic answers its cancelled handler with a 500 nobody reads.
    status = CLIENT_CLOSED if info is not None and info.lost else response.status
    if access_log.enabled():
        access_log.write(
            {
                "method": request.method,
                "route": route_of(request),
                "path": request.path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "request_id": request_id,
                "session": hash_session(session_of(request)),
            }
        )
    return elapsed, status


async def _end(request: ApiRequest, response: BaseHTTPResponse) -> None:
    _finish(request, response)


def register(app: App) -> None:
    if not app.ctx.settings.metrics_enabled:
        app.middleware(_begin, "request", priority=PRIORITY)
        app.middleware(_end, "response", priority=PRIORITY)
        return
    inflight = metrics.INFLIGHT
    record = metrics.http.record

    async def begin_measured(request: ApiRequest) -> None:
        if not is_operational(request.route):
            inflight.add(request)  # weak: a request cancelled mid-way drops out by itself
        request.ctx.started = time.perf_counter()
        REQUEST_ID.set(request_id_of(request))

    async def end_measured(request: ApiRequest, response: BaseHTTPResponse) -> None:
        inflight.discard(request)
        elapsed, status = _finish(request, response)
        route = request.route
        if not is_operational(route):
            record(request.method, None if route is None else route.path, status, elapsed)

    app.before_server_start(_init_series)
    app.middleware(begin_measured, "request", priority=PRIORITY)
    app.middleware(end_measured, "response", priority=PRIORITY)
