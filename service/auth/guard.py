"""What handlers ask about identity: the player (or None), a required player, an admin.

The middleware (service.auth.middleware) has already verified the bearer token when a handler
runs: a bad token never gets here (401 authentication_failed), no token means anonymous.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sanic import HTTPResponse

from service.contract.errors import AuthenticationRequired, Forbidden
from service.contract.players import Player
from service.ctx import ApiRequest

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[HTTPResponse]])


def player_of(request: ApiRequest) -> Player | None:
    """The verified player of this request, or None for an anonymous one."""
    return request.ctx.player


def require_player(request: ApiRequest) -> Player:
    """The verified player; 401 authentication_required without a token."""
    player = request.ctx.player
    if player is None:
        raise AuthenticationRequired("This needs a bearer token (Authorization: Bearer <JWT>)")
    return player


def require_admin(request: ApiRequest) -> Player:
    """The verified player with role admin; 401 without a token, 403 forbidden without it."""
    player = require_player(request)
    if not player.is_admin:
        raise Forbidden("This needs the admin role")
    return player


def admin_only(handler: Handler) -> Handler:
    """Decorate a handler so that it runs for admins only (require_admin first)."""

    @functools.wraps(handler)
    async def guarded(request: ApiRequest, *args: Any, **kwargs: Any) -> HTTPResponse:
        require_admin(request)
        return await handler(request, *args, **kwargs)

    return guarded  # type: ignore[return-value]
