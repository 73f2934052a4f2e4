"""GET /openapi.json at the root: sanic-ext's document (also at /docs/openapi.json, UI at /docs),
and the Swagger UI files /docs loads, served from the pinned swagger-ui-bundle package.

The document only changes when routes do, so each app builds and encodes it once. The UI's
scripts come from this server, never from a CDN (a CDN file without SRI can be swapped for
one that steals the bearer token typed into /docs): sanic-ext's page asks for
{OAS_UI_SWAGGER_CDN_URL}/{OAS_UI_SWAGGER_VERSION}/<file>, which app.py points here.
"""

from __future__ import annotations

import os

import swagger_ui_bundle
from sanic import Blueprint, HTTPResponse
from sanic.exceptions import NotFound
from sanic_ext.extensions.openapi import openapi
from sanic_ext.extensions.openapi.builders import SpecificationBuilder

from service.ctx import ApiRequest
from service.http.responses import json_response

SWAGGER_UI_DIR: str = swagger_ui_bundle.swagger_ui_path
SWAGGER_UI_URL = "/docs/assets"
SWAGGER_UI_VERSION = os.path.basename(SWAGGER_UI_DIR)  # "swagger-ui-4.15.5": in every URL
# The names sanic-ext's page asks for -> (file in the package, content type).
SWAGGER_UI_FILES = {
    "swagger-ui.min.css": ("swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.min.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui-standalone-preset.min.js": (
        "swagger-ui-standalone-preset.js",
        "text/javascript; charset=utf-8",
    ),
}


def _read(name: str) -> bytes:
    with open(os.path.join(SWAGGER_UI_DIR, name), "rb") as f:
        return f.read()


def blueprint() -> Blueprint:
    encoded: list[bytes] = []  # this app's document, built on first request
    assets: dict[str, bytes] = {}  # read on first request

    @openapi.exclude()
    async def swagger_ui_file(request: ApiRequest, name: str) -> HTTPResponse:
        if name not in SWAGGER_UI_FILES:
            raise NotFound("No such file")
        source, content_type = SWAGGER_UI_FILES[name]
        if name not in assets:
            assets[name] = _read(source)
        return HTTPResponse(assets[name], content_type=content_type)

    @openapi.exclude()
    async def openapi_json(request: ApiRequest) -> HTTPResponse:
        if not encoded:
            spec = SpecificationBuilder().build(request.app)
            body = json_response(spec.serialize()).body  # type: ignore[no-untyped-call]
            encoded.append(body or b"")
        return HTTPResponse(encoded[0], content_type="application/json")

    bp = Blueprint("openapi_root")
    bp.add_route(openapi_json, "/openapi.json", methods=["GET"], name="openapi_json")
    bp.add_route(
        swagger_ui_file,
        f"{SWAGGER_UI_URL}/{SWAGGER_UI_VERSION}/<name:str>",
        methods=["GET"],
        name="swagger_ui_file",
    )
    return bp
