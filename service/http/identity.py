"""Who is calling, for the domain's owner checks: the session, and the verified player."""

from __future__ import annotations

from service.auth.guard import player_of
from service.builds.store import Caller
from service.ctx import ApiRequest
from service.http.sessions import session_of


def caller_of(request: ApiRequest) -> Caller:
    return Caller(session_of(request), player_of(request))
