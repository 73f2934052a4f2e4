"""Builds API: create, read, list, update, delete, templates, popular."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse

from service import build_queries, builds, schemas
from service.ctx import ApiRequest
from service.docs import doc
from service.responses import json_response
from service.sessions import session_of
from service.validation import decode_body, parse_query


@doc(body=schemas.BuildCreate, ok=(201, schemas.Build), errors=(422, 429))
async def create_build(request: ApiRequest) -> HTTPResponse:
    body = decode_body(request, schemas.BuildCreate)
    row = await builds.create(body, session_of(request))
    return json_response(builds.to_build(row, request.app.ctx.settings.website_url), 201)


@doc(ok=(200, schemas.Build), errors=(404,))
async def get_build(request: ApiRequest, build_id: str) -> HTTPResponse:
    row = await builds.load_visible(build_id, session_of(request))
    return json_response(builds.to_build(row, request.app.ctx.settings.website_url))


@doc(query=schemas.BuildListQuery, ok=(200, schemas.BuildList), errors=(422,))
async def list_builds(request: ApiRequest) -> HTTPResponse:
    query = parse_query(request, schemas.BuildListQuery)
    return json_response(await build_queries.list_builds(query))


@doc(body=schemas.BuildPatch, ok=(200, schemas.Build), errors=(403, 404, 422))
async def update_build(request: ApiRequest, build_id: str) -> HTTPResponse:
    row = await builds.load_owned(build_id, session_of(request))
    patch = decode_body(request, schemas.BuildPatch)
    row = await builds.update(row, patch.changes())
    return json_response(builds.to_build(row, request.app.ctx.settings.website_url))


@doc(ok=(200, schemas.BuildDeleted), errors=(403, 404))
async def delete_build(request: ApiRequest, build_id: str) -> HTTPResponse:
    await builds.load_owned(build_id, session_of(request))
    await builds.delete(build_id)
    return json_response(
        schemas.BuildDeleted(build_id=build_id, deleted=True, message=f"Build {build_id} deleted")
    )


@doc(ok=(200, schemas.TemplateList))
async def list_templates(request: ApiRequest) -> HTTPResponse:
    return json_response(await build_queries.templates(request.app.ctx.settings.website_url))


@doc(query=schemas.PopularBuildsQuery, ok=(200, schemas.PopularBuilds), errors=(422,))
async def popular_builds(request: ApiRequest) -> HTTPResponse:
    query = parse_query(request, schemas.PopularBuildsQuery)
    return json_response(await build_queries.popular(query))


def blueprint() -> Blueprint:
    bp = Blueprint("builds")
    # Static paths first so "templates"/"popular" never match <build_id>.
    bp.add_route(list_templates, "/builds/templates", methods=["GET"], name="templates")
    bp.add_route(popular_builds, "/builds/popular", methods=["GET"], name="popular")
    bp.add_route(create_build, "/builds", methods=["POST"], name="create")
    bp.add_route(list_builds, "/builds", methods=["GET"], name="list")
    bp.add_route(get_build, "/builds/<build_id:str>", methods=["GET"], name="get")
    bp.add_route(update_build, "/builds/<build_id:str>", methods=["PATCH"], name="update")
    bp.add_route(delete_build, "/builds/<build_id:str>", methods=["DELETE"], name="delete")
    return bp
