"""/openapi.json and /docs: a valid OpenAPI document that describes every route of the app."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from service import __version__
from service.ctx import App
from tests.auth_keys import Key, provider_settings

DOCS_ROUTES = re.compile(r"^(docs(/.*)?|openapi\.json)$")
ERROR_CODES = {"400", "401", "403", "404", "409", "413", "422", "429", "500", "503"}


@pytest.fixture
async def spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "patch", "delete", "put"}
    ]


def sanic_path(path: str) -> str:
    """'/api/v1/builds/{build_id}' for the route 'api/v1/builds/<build_id:str>'."""
    return "/" + re.sub(r"<([^:>]+)(:[^>]+)?>", r"{\1}", path)


async def test_document_is_valid_openapi(spec: dict[str, Any]) -> None:
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "MyAshes community backend"
    assert spec["info"]["version"] == __version__
    assert "X-Session-ID" in spec["info"]["description"]


async def test_every_route_is_documented(app: App, spec: dict[str, Any]) -> None:
    routes = {
        (sanic_path(route.path), method.lower())
        for route in app.router.routes
        for method in route.methods
        if method not in {"HEAD", "OPTIONS"} and not DOCS_ROUTES.match(route.path)
    }
    documented = {(path, method) for path, method, _ in operations(spec)}
    assert routes - documented == set()
    assert documented - routes == set()
    assert len(routes) >= 15


async def test_every_operation_is_fully_described(spec: dict[str, Any]) -> None:
    ids = []
    for path, method, op in operations(spec):
        where = f"{method.upper()} {path}"
        ids.append(op["operationId"])
        assert op["summary"], where
        responses = op["responses"]
        assert "default" not in responses, where
        success = [code for code in responses if code.startswith("2")]
        assert len(success) == 1, where
        for code, response in responses.items():
            assert response["description"], (where, code)
            assert response["headers"]["X-Session-ID"]["required"] is True, (where, code)
            assert response["content"], (where, code)
            if code in ERROR_CODES and not (path == "/health" and code == "503"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (where, code)
            if code in {"429", "503"} and path != "/health":
                assert response["headers"]["Retry-After"]["required"] is True, (where, code)
        assert {"500", "503"} <= set(responses), where
        params = {(p["in"], p["name"]): p for p in op.get("parameters", [])}
        assert ("header", "X-Session-ID") in params, where
        for name in re.findall(r"{([^}]+)}", path):
            assert params[("path", name)]["required"] is True, where
        if method in {"post", "patch"} and op["operationId"] != "claimBuilds":  # no body
            assert op["requestBody"]["required"] is True, where
            assert {"413", "422"} <= set(responses), where
    assert len(ids) == len(set(ids))


async def test_rate_limited_operations_say_so(spec: dict[str, Any]) -> None:
    limited = {(path, method) for path, method, op in operations(spec) if "429" in op["responses"]}
    assert limited == {
        ("/api/v1/builds", "post"),
        ("/api/v1/builds", "get"),
        ("/api/v1/builds/{build_id}", "get"),
        ("/api/v1/builds/{build_id}", "patch"),
        ("/api/v1/builds/{build_id}", "delete"),
        ("/api/v1/builds/{build_id}/vote", "post"),
        ("/api/v1/builds/templates", "get"),
        ("/api/v1/builds/popular", "get"),
        ("/api/v1/feedback", "post"),
        ("/api/v1/analytics/search", "post"),
        ("/api/v1/analytics/popular-queries", "get"),
        ("/api/v1/builds/auth/status", "get"),
        ("/api/v1/builds/auth/claim", "post"),
        ("/api/v1/admin/feedback", "get"),
        ("/api/v1/admin/feedback/summary", "get"),
        ("/api/v1/admin/feedback/patterns", "get"),
        ("/api/v1/admin/feedback/export.csv", "get"),
        ("/api/v1/admin/insights/content-gaps", "get"),
        ("/api/v1/admin/insights/hidden-queries", "get"),
    }
    for path, method in limited:
        for response in spec["paths"][path][method]["responses"].values():
            for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
                assert response["headers"][header]["schema"]["type"] == "integer"


async def test_documents_come_from_the_validating_models(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    create = schemas["BuildCreate"]
    assert set(create["required"]) == {"name", "primary_archetype", "secondary_archetype", "race"}
    assert create["properties"]["description"] == {
        "type": "string",
        "maxLength": 2000,
        "default": None,
        "nullable": True,
    }
    assert schemas["VoteIn"]["properties"]["rating"]["minimum"] == 1
    assert schemas["BuildPatch"]["additionalProperties"] is False
    assert schemas["Error"]["required"] == ["error", "message", "status"]
    listing = {p["name"]: p for p in spec["paths"]["/api/v1/builds"]["get"]["parameters"]}
    assert listing["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 20,
    }
    assert listing["sort"]["schema"]["enum"] == ["newest", "popular", "rating"]
    vote = spec["paths"]["/api/v1/builds/{build_id}/vote"]["post"]
    session = next(p for p in vote["parameters"] if p["name"] == "X-Session-ID")
    assert session["required"] is True


async def test_links_let_a_client_follow_a_created_build(spec: dict[str, Any]) -> None:
    created = spec["paths"]["/api/v1/builds"]["post"]["responses"]["201"]
    ids = {op["operationId"] for _, _, op in operations(spec)}
    assert {link["operationId"] for link in created["links"].values()} <= ids
    assert created["links"]["getBuild"]["parameters"]["build_id"] == "$response.body#/build_id"


async def test_docs_ui_and_both_json_urls(client: httpx.AsyncClient, spec: dict[str, Any]) -> None:
    ui = await client.get("/docs")
    assert ui.status_code == 200
    assert "text/html" in ui.headers["content-type"]
    under_docs = await client.get("/docs/openapi.json")
    assert under_docs.json() == spec


async def test_docs_load_swagger_ui_from_this_server_only(client: httpx.AsyncClient) -> None:
    """Issue 17 item 11: no script or stylesheet from a CDN (no SRI there); the files are
    the pinned swagger-ui-bundle package's, byte for byte."""
    import os
    import re

    import swagger_ui_bundle

    page = (await client.get("/docs")).text
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert len(urls) == 3, urls
    assert all(url.startswith("/docs/assets/swagger-ui-") for url in urls), urls
    assert "http" not in page.replace("http-equiv", "")
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        name = url.rsplit("/", 1)[1].replace(".min.", ".")
        with open(os.path.join(swagger_ui_bundle.swagger_ui_path, name), "rb") as f:
            assert response.content == f.read()
        kind = "text/css" if url.endswith(".css") else "text/javascript"
        assert response.headers["content-type"].startswith(kind)
    assert (await client.get("/docs/assets/swagger-ui-4.15.5/index.html")).status_code == 404
    assert (await client.get("/docs/redoc")).status_code == 404  # ReDoc loads from a CDN


PRODUCTION = {"env": "production", **provider_settings(auth_public_key=Key.new("k1").public_pem())}


@pytest.mark.parametrize("settings_overrides", [PRODUCTION], indirect=True)
async def test_docs_are_on_in_production(client: httpx.AsyncClient) -> None:
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/docs")).status_code == 200


TOKEN_REQUIRED = ("claimBuilds", "hideQuery", "unhideQuery", "listHiddenQueries")


async def test_every_route_that_reads_the_token_says_so(spec: dict[str, Any]) -> None:
    """Every /api/ route reads a bearer token when sent (optional; claim needs one); the
    operational routes ignore Authorization and say nothing about it."""
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    for path, method, op in operations(spec):
        where = f"{method.upper()} {path}"
        if not path.startswith("/api/"):
            assert "security" not in op, where
            assert "401" not in op["responses"], where
            continue
        required = op["operationId"] in TOKEN_REQUIRED or path.startswith("/api/v1/admin/")
        expected = [{"bearerAuth": []}] if required else [{}, {"bearerAuth": []}]
        assert op["security"] == expected, where
        unauthorized = op["responses"]["401"]
        assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True, where
        assert "authentication_failed" in unauthorized["description"], where
