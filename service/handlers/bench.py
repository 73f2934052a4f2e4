"""No-op JSON endpoints, registered only with BENCH_ENDPOINTS=true: the benchmark ceiling."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse

from service.ctx import ApiRequest

_OK = b'{"ok":true}'


async def noop(request: ApiRequest) -> HTTPResponse:
    return HTTPResponse(_OK, content_type="application/json")


def blueprint() -> Blueprint:
    bp = Blueprint("bench", url_prefix="/_bench")
    bp.add_route(noop, "/noop", methods=["GET", "POST"], name="noop")
    return bp
