"""GET /openapi.json at the root (sanic-ext serves the same document under /docs)."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse
from sanic_ext.extensions.openapi.builders import SpecificationBuilder

from service.ctx import ApiRequest
from service.responses import json_response


async def openapi_json(request: ApiRequest) -> HTTPResponse:
    spec = SpecificationBuilder().build(request.app)
    return json_response(spec.serialize())  # type: ignore[no-untyped-call]


def blueprint() -> Blueprint:
    bp = Blueprint("openapi_root")
    bp.add_route(openapi_json, "/openapi.json", methods=["GET"], name="openapi_json")
    return bp
