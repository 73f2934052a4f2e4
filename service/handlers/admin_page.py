"""GET /admin: the insights page for a person (static HTML + one JS module + CSS, package data
under service/web/admin), served with a strict Content-Security-Policy: no inline script or
style, only this origin's files and API. The page asks for a token and calls /api/v1/admin/*."""

from __future__ import annotations

from importlib import resources

from sanic import Blueprint, HTTPResponse

from service.contract.errors import AppError
from service.ctx import ApiRequest
from service.http.docs import doc

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ASSETS = {
    "admin.js": "text/javascript; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


class AssetNotFound(AppError):
    code, status = "not_found", 404


def _read(name: str) -> bytes:
    return resources.files("service").joinpath("web", "admin", name).read_bytes()


@doc(
    operation_id="adminPage",
    summary="The insights page (HTML) for admins; it asks for a bearer token itself",
    ok=(200, str),
    media_type="text/html",
    limited=False,
    auth=None,
)
async def page(request: ApiRequest) -> HTTPResponse:
    return HTTPResponse(
        _read("index.html"), headers=HEADERS, content_type="text/html; charset=utf-8"
    )


@doc(
    operation_id="adminPageAsset",
    summary="The insights page's script (admin.js) and style sheet (admin.css)",
    ok=(200, str),
    media_type="text/plain",
    errors=(404,),
    limited=False,
    auth=None,
)
async def asset(request: ApiRequest, name: str) -> HTTPResponse:
    content_type = ASSETS.get(name)
    if content_type is None:
        raise AssetNotFound(f"No admin page file {name}")
    return HTTPResponse(_read(name), headers=HEADERS, content_type=content_type)


def blueprint() -> Blueprint:
    bp = Blueprint("admin_page")
    bp.add_route(page, "/admin", methods=["GET"], name="page")
    bp.add_route(asset, "/admin/<name:str>", methods=["GET"], name="asset")
    return bp
