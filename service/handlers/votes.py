"""Votes API: one durable vote per build per session (and per player with a bearer token),
group-committed by the VoteAggregator."""

from __future__ import annotations

import asyncio
import math

from sanic import Blueprint, HTTPResponse

from aggregators.votes import Outcome, VoteNotStored
from service.auth.guard import player_of
from service.contract import schemas
from service.contract.errors import (
    AlreadyVoted,
    BuildNotFound,
    RateLimited,
    ServiceUnavailable,
    SessionRequired,
)
from service.contract.formats import average
from service.ctx import ApiRequest
from service.http import ratelimit
from service.http.client_ip import source_network_of
from service.http.docs import doc
from service.http.responses import json_response
from service.http.sessions import session_of, session_was_sent
from service.http.validation import decode_body
from service.telemetry import metrics

RETRY_S = 2


@doc(
    operation_id="voteOnBuild",
    summary="Rate a build 1-5, once per session and per player (needs a client-sent X-Session-ID)",
    build_id=True,
    body=schemas.VoteIn,
    ok=(200, schemas.VoteOut),
    errors=(400, 404, 409, 429),
    session_required=True,
)
async def vote(request: ApiRequest, build_id: str) -> HTTPResponse:
    if not session_was_sent(request):
        raise SessionRequired("Voting needs the X-Session-ID header (sess_ + 24 hex)")
    body = decode_body(request, schemas.VoteIn)
    session_id = session_of(request)
    player = player_of(request)
    ctx = request.app.ctx
    # Existence and visibility are checked inside the vote's batch, under the build lock.
    try:
        result = await asyncio.wait_for(
            ctx.votes.submit(
                build_id,
                session_id,
                body.rating,
                player.id if player else None,
                source_network_of(request),
            ),
            ctx.settings.vote_timeout_s,
        )
    except (VoteNotStored, TimeoutError) as exc:
        raise ServiceUnavailable(
            "Vote could not be stored right now; retry later", retry_after=RETRY_S
        ) from exc
    metrics.vote(result.outcome.value)
    if result.outcome is Outcome.NOT_FOUND:
        raise BuildNotFound(build_id)
    if result.outcome is Outcome.NETWORK_LIMITED:
        retry_after = math.ceil(result.retry_after_s)
        limit = ctx.votes.votes_per_network or 0
        window = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(retry_after),
        }
        request.ctx.rate_limit_headers = window  # the binding limit: what the middleware sends
        ratelimit.count_network_limited()
        raise RateLimited(
            f"Rate limit exceeded for voting on build {build_id}: {limit} votes per 24 h "
            "per network",
            retry_after=retry_after,
            headers=window,
        )
    if result.outcome is Outcome.DUPLICATE:
        who = "session" if player is None else "player or session"
        raise AlreadyVoted(f"This {who} has already voted on build {build_id}")
    avg = average(result.rating_sum, result.vote_count)
    out = schemas.VoteOut(
        build_id=build_id,
        your_rating=body.rating,
        avg_rating=avg if avg is not None else float(body.rating),
        vote_count=result.vote_count,
    )
    return json_response(out)


def blueprint() -> Blueprint:
    bp = Blueprint("votes")
    bp.add_route(
        vote,
        "/builds/<build_id:str>/vote",
        methods=["POST"],
        name="vote",
        ctx_rate_limit=ratelimit.VOTE,
    )
    return bp
