"""X-Session-ID: the anonymous identity. Validated, generated when missing, echoed on every
response with Cache-Control: no-store. (The other identity, a verified bearer token, is
service.auth's.)"""

from __future__ import annotations

import re
import secrets

from sanic.response import BaseHTTPResponse

from service.ctx import ApiRequest, App

HEADER = "X-Session-ID"
_PATTERN = re.compile(r"sess_[0-9a-f]{24}")


def new_session_id() -> str:
    return "sess_" + secrets.token_hex(12)


def session_of(request: ApiRequest) -> str:
    """The session in use for this request (resolved once, cached on request.ctx).

    Errors raised before any middleware (404, 405, 413) still get a session here.
    """
    ctx = request.ctx
    if ctx.session_id is None:
        sent = request.headers.get(HEADER)
        ctx.session_sent = sent is not None and _PATTERN.fullmatch(sent) is not None
        ctx.session_id = sent if sent is not None and ctx.session_sent else new_session_id()
    return ctx.session_id


def session_was_sent(request: ApiRequest) -> bool:
    """True when the client sent a valid X-Session-ID (voting requires it)."""
    session_of(request)
    return request.ctx.session_sent


async def _echo_session(request: ApiRequest, response: BaseHTTPResponse) -> None:
    response.headers[HEADER] = session_of(request)
    # A response that names a session must never be stored by a browser or shared cache
    # (contract: every API response carries no-store). A route that sets its own
    # Cache-Control (the pinned /docs assets) keeps it.
    if "cache-control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"


def register(app: App) -> None:
    app.middleware(_echo_session, "response", priority=100)
