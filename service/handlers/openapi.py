"""GET /openapi.json at the root: sanic-ext's document (also at /docs/openapi.json, UI at /docs).

The document only changes when routes do, so each app builds and encodes it once.
"""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse
from sanic_ext.extensions.openapi import openapi
from sanic_ext.extensions.openapi.builders import SpecificationBuilder

from service.ctx import ApiRequest
from service.http.responses import json_response


def blueprint() -> Blueprint:
    encoded: list[bytes] = []  # this app's document, built on first request

    @openapi.exclude()
    async def openapi_json(request: ApiRequest) -> HTTPResponse:
        if not encoded:
            spec = SpecificationBuilder().build(request.app)
            body = json_response(spec.serialize()).body  # type: ignore[no-untyped-call]
            encoded.append(body or b"")
        return HTTPResponse(encoded[0], content_type="application/json")

    bp = Blueprint("openapi_root")
    bp.add_route(openapi_json, "/openapi.json", methods=["GET"], name="openapi_json")
    return bp
