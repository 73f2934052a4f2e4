"""Players API: who the bearer token says is calling, and claiming a session's anonymous
builds for that player; the local development issuer's public keys (JWKS)."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, HTTPResponse

from service.auth.guard import player_of, require_player
from service.auth.local_issuer import LocalIssuer
from service.builds import store as builds
from service.contract import schemas
from service.ctx import ApiRequest
from service.http import ratelimit
from service.http.docs import doc
from service.http.responses import json_response
from service.http.sessions import session_of


@doc(
    operation_id="authStatus",
    summary="Who the bearer token says is calling (anonymous without one)",
    ok=(200, schemas.AuthStatus),
)
async def auth_status(request: ApiRequest) -> HTTPResponse:
    player = player_of(request)
    if player is None:
        return json_response(schemas.AuthStatus(authenticated=False, player=None, roles=[]))
    return json_response(
        schemas.AuthStatus(
            authenticated=True,
            player=schemas.PlayerOut(display_name=player.display_name),
            roles=sorted(player.roles),
        )
    )


@doc(
    operation_id="claimBuilds",
    summary="Move this session's anonymous builds to the player (idempotent)",
    description="Needs a bearer token (401 authentication_required without one). Only the "
    "builds the sending session created without a token move; repeated: claimed 0.",
    ok=(200, schemas.Claimed),
    auth="player",
)
async def claim(request: ApiRequest) -> HTTPResponse:
    player = require_player(request)
    claimed = await builds.claim(session_of(request), player)
    return json_response(schemas.Claimed(claimed=claimed))


def blueprint() -> Blueprint:
    bp = Blueprint("players")
    bp.add_route(auth_status, "/builds/auth/status", methods=["GET"], name="auth_status")
    bp.add_route(
        claim,
        "/builds/auth/claim",
        methods=["POST"],
        name="auth_claim",
        ctx_rate_limit=ratelimit.BUILD_CREATE,
    )
    return bp


def jwks_blueprint() -> Blueprint:
    """GET /.well-known/jwks.json: the local issuer's public key (development only)."""
    encoded: list[bytes] = []

    @doc(
        operation_id="localJwks",
        summary="Public keys of the local development issuer (JWKS; not in production)",
        ok=(200, schemas.Jwks),
        limited=False,
        auth=None,
    )
    async def jwks(request: ApiRequest) -> HTTPResponse:
        if not encoded:
            keys: dict[str, Any] = LocalIssuer.of(request.app.ctx.settings).jwks()
            encoded.append(json_response(keys).body or b"")
        return HTTPResponse(encoded[0], content_type="application/json")

    bp = Blueprint("local_jwks")
    bp.add_route(jwks, "/.well-known/jwks.json", methods=["GET"], name="jwks")
    return bp
