"""Every error the API returns, in one shape: {error, message, status[, details]}.

Our own errors are the AppError tree of service.contract.errors (code and status on each class).
Sanic's own errors map to not_found 404, method_not_allowed 405, payload_too_large 413,
request_header_fields_too_large 431, request_timeout 408 (headers or body too slow),
bad_request 400; an unreachable store is service_unavailable 503;
anything else is a logged internal_error 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
import msgspec
from redis import exceptions as redis_exc
from sanic import HTTPResponse, Request, Sanic
from sanic import exceptions as sanic_exc
from tortoise.exceptions import DBConnectionError

from service.contract.errors import AppError, Problem

log = logging.getLogger("myashes.errors")


_SANIC_CODES: tuple[tuple[type[Exception], str], ...] = (
    (sanic_exc.NotFound, "not_found"),
    (sanic_exc.MethodNotAllowed, "method_not_allowed"),
    (sanic_exc.PayloadTooLarge, "payload_too_large"),
    (sanic_exc.RequestTimeout, "request_timeout"),
    (sanic_exc.ServiceUnavailable, "service_unavailable"),
)

# A store that cannot be reached is a 503 with Retry-After (contract), not a 500.
DEPENDENCY_DOWN: tuple[type[Exception], ...] = (
    OSError,  # ConnectionRefusedError, TimeoutError, socket.gaierror from asyncpg's connect
    DBConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
)
DEPENDENCY_RETRY_AFTER_S = 5
DEPENDENCY_DOWN_MESSAGE = "A backing service is unavailable, retry later"

_encode = msgspec.json.Encoder().encode


def error_response(
    code: str,
    message: str,
    status: int,
    *,
    details: list[Problem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTTPResponse:
    body: dict[str, Any] = {"error": code, "message": message, "status": status}
    if details:
        body["details"] = details
    return HTTPResponse(
        _encode(body),
        status=status,
        headers=dict(headers) if headers else None,
        content_type="application/json",
    )


def _allowed_methods(request: Request) -> str:
    """Methods routed for this path (sanic-routing leaves them out for dynamic paths)."""
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        try:
            request.app.router.get(request.path, method, request.headers.get("host"))
        except sanic_exc.SanicException:
            continue
        allowed.append(method)
    return ", ".join(allowed)


def _protocol_error(request: Request, exc: Exception) -> HTTPResponse | None:
    """Limits Sanic's HTTP server enforces, named for what the client did wrong."""
    if isinstance(exc, sanic_exc.PayloadTooLarge) and "header" in str(exc).lower():
        message = "Request line and headers are larger than the limit"
        return error_response("request_header_fields_too_large", message, 431)
    # Sanic's response timer also runs while the body arrives: a client that stalls its
    # body is a 408 (its fault), not a 503 (ours, which would page someone).
    if (
        isinstance(exc, sanic_exc.ServiceUnavailable)
        and str(exc) == "Response Timeout"
        and getattr(request.stream, "request_body", None)
    ):
        return error_response("request_timeout", "Request body not received in time", 408)
    return None


def _sanic_error(request: Request, exc: sanic_exc.SanicException) -> HTTPResponse:
    protocol = _protocol_error(request, exc)
    if protocol is not None:
        return protocol
    status = int(exc.status_code)
    code = next((c for cls, c in _SANIC_CODES if isinstance(exc, cls)), None)
    if code is None:
        code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    headers = {k: str(v) for k, v in (exc.headers or {}).items()}
    if isinstance(exc, sanic_exc.MethodNotAllowed):
        message = f"Method {exc.method} not allowed for this URL"
        if not any(name.lower() == "allow" for name in headers):
            headers["Allow"] = _allowed_methods(request)
    elif isinstance(exc, sanic_exc.NotFound):
        message = "No route matches this URL"
    elif isinstance(exc, sanic_exc.PayloadTooLarge):
        message = "Request body is larger than the limit"
    else:
        message = str(exc) if exc.quiet or status < 500 else HTTPStatus(status).phrase
    return error_response(code, message, status, headers=headers)


def _malformed(request: Request, exc: Exception) -> bool:
    """A request Sanic's parser refused before any route was matched (bad request line or
    header field, bad URL): the client's fault, worth one WARNING line, never a traceback."""
    return isinstance(exc, sanic_exc.BadRequest) and request.route is None


async def handle(request: Request, exc: Exception) -> HTTPResponse:
    """The one exception handler: every error leaves in the contract shape."""
    if _malformed(request, exc):
        peer = request.transport.get_extra_info("peername") if request.transport else None
        log.warning("malformed request from %s refused: %s", peer, exc)
    if isinstance(exc, AppError):
        return error_response(
            exc.code, exc.message, exc.status, details=exc.details, headers=exc.headers
        )
    if isinstance(exc, sanic_exc.SanicException) and int(exc.status_code) < 500:
        return _sanic_error(request, exc)
    if isinstance(exc, sanic_exc.ServiceUnavailable):
        return _sanic_error(request, exc)
    if isinstance(exc, DEPENDENCY_DOWN):
        log.warning("dependency unavailable on %s %s: %r", request.method, request.path, exc)
        return error_response(
            "service_unavailable",
            DEPENDENCY_DOWN_MESSAGE,
            503,
            headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_S)},
        )
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response("internal_error", "Internal server error", 500)


def register(app: Sanic[Any, Any]) -> None:
    app.error_handler.add(Exception, handle)
