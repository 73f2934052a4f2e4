"""Builds API: create, read, list, update, delete, templates, popular."""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse

from service.auth.guard import require_player
from service.builds import queries as build_queries
from service.builds import store as builds
from service.builds.popular import popular
from service.contract import schemas
from service.ctx import ApiRequest
from service.http import docs, ratelimit
from service.http.docs import doc
from service.http.identity import caller_of
from service.http.responses import json_response
from service.http.validation import decode_body, parse_query
from service.telemetry import metrics


@doc(
    operation_id="createBuild",
    summary="Create a build owned by the player (bearer token), else by the request's session",
    description="With AUTH_REQUIRED_FOR_WRITES=true a bearer token is required (else 401 "
    "authentication_required).",
    body=schemas.BuildCreate,
    ok=(201, schemas.Build),
    links=docs.links_from_build("getBuild", "updateBuild", "deleteBuild", "voteOnBuild"),
)
async def create_build(request: ApiRequest) -> HTTPResponse:
    if request.app.ctx.settings.auth_required_for_writes:
        require_player(request)
    body = decode_body(request, schemas.BuildCreate)
    row = await builds.create(body, caller_of(request))
    metrics.BUILDS_CREATED.inc()
    return json_response(builds.to_build(row, request.app.ctx.settings.website_url), 201)


@doc(
    operation_id="getBuild",
    summary="One build (private builds only for their owner: player or session)",
    build_id=True,
    ok=(200, schemas.Build),
    errors=(404,),
)
async def get_build(request: ApiRequest, build_id: str) -> HTTPResponse:
    row = await builds.load_visible(build_id, caller_of(request))
    return json_response(builds.to_build(row, request.app.ctx.settings.website_url))


@doc(
    operation_id="listBuilds",
    summary="Public builds, filtered, sorted and paged",
    query=schemas.BuildListQuery,
    ok=(200, schemas.BuildList),
    errors=(422,),
)
async def list_builds(request: ApiRequest) -> HTTPResponse:
    query = parse_query(request, schemas.BuildListQuery)
    return json_response(await build_queries.list_builds(query))


@doc(
    operation_id="updateBuild",
    summary="Change name, description or visibility (owner only: player or session)",
    build_id=True,
    body=schemas.BuildPatch,
    ok=(200, schemas.Build),
    errors=(403, 404),
    links=docs.links_from_build("getBuild"),
)
async def update_build(request: ApiRequest, build_id: str) -> HTTPResponse:
    row = await builds.load_owned(build_id, caller_of(request))
    patch = decode_body(request, schemas.BuildPatch)
    row = await builds.update(row, patch.changes())
    return json_response(builds.to_build(row, request.app.ctx.settings.website_url))


@doc(
    operation_id="deleteBuild",
    summary="Delete a build and its votes (owner only: player or session)",
    build_id=True,
    ok=(200, schemas.BuildDeleted),
    errors=(403, 404),
)
async def delete_build(request: ApiRequest, build_id: str) -> HTTPResponse:
    await builds.load_owned(build_id, caller_of(request))
    await builds.delete(build_id)
    return json_response(
        schemas.BuildDeleted(build_id=build_id, deleted=True, message=f"Build {build_id} deleted")
    )


@doc(
    operation_id="listTemplates",
    summary="Official template builds",
    ok=(200, schemas.TemplateList),
)
async def list_templates(request: ApiRequest) -> HTTPResponse:
    return json_response(await build_queries.templates(request.app.ctx.settings.website_url))


@doc(
    operation_id="popularBuilds",
    summary="Public builds with the most votes in a period",
    query=schemas.PopularBuildsQuery,
    ok=(200, schemas.PopularBuilds),
    errors=(422,),
)
async def popular_builds(request: ApiRequest) -> HTTPResponse:
    query = parse_query(request, schemas.PopularBuildsQuery)
    return json_response(await popular(query, request.app.ctx.popular_builds))


def blueprint() -> Blueprint:
    bp = Blueprint("builds")
    # Static paths first so "templates"/"popular" never match <build_id>.
    bp.add_route(list_templates, "/builds/templates", methods=["GET"], name="templates")
    bp.add_route(popular_builds, "/builds/popular", methods=["GET"], name="popular")
    bp.add_route(
        create_build,
        "/builds",
        methods=["POST"],
        name="create",
        ctx_rate_limit=ratelimit.BUILD_CREATE,
    )
    bp.add_route(list_builds, "/builds", methods=["GET"], name="list")
    bp.add_route(get_build, "/builds/<build_id:str>", methods=["GET"], name="get")
    bp.add_route(
        update_build,
        "/builds/<build_id:str>",
        methods=["PATCH"],
        name="update",
        ctx_rate_limit=ratelimit.EDIT,
    )
    bp.add_route(
        delete_build,
        "/builds/<build_id:str>",
        methods=["DELETE"],
        name="delete",
        ctx_rate_limit=ratelimit.EDIT,
    )
    return bp
