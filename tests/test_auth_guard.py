"""The admin guard (service.auth.guard) on test-only routes: 401 authentication_required
without a token, 403 forbidden without role admin, the admin through; headers prove nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sanic import HTTPResponse

from service.app import create_app
from service.auth.guard import admin_only, player_of, require_admin
from service.ctx import ApiRequest
from service.http.responses import json_response
from tests.apps import serving
from tests.auth_keys import Key, bearer, claims, provider_settings
from tests.conftest import Stores, clean_stores, make_settings
from tests.factories import error

KEY = Key.new("guard-1", "EdDSA")
ADMIN = KEY.sign(claims("steam:1", "Root", ["admin", "moderator"]))
PLAYER = KEY.sign(claims("steam:2", "Pat", ["moderator"]))
REQUIRED = error(
    "authentication_required", "This needs a bearer token (Authorization: Bearer <JWT>)", 401
)
FORBIDDEN = error("forbidden", "This needs the admin role", 403)


@pytest.fixture
async def guarded(stores: Stores) -> AsyncIterator[httpx.AsyncClient]:
    await clean_stores(stores)
    app = create_app(make_settings(stores, **provider_settings(auth_public_key=KEY.public_pem())))

    @admin_only
    async def decorated(request: ApiRequest, item: str) -> HTTPResponse:
        player = player_of(request)
        assert player is not None
        return json_response({"item": item, "admin": player.display_name})

    async def inline(request: ApiRequest) -> HTTPResponse:
        admin = require_admin(request)
        return json_response({"admin": admin.display_name, "roles": sorted(admin.roles)})

    app.add_route(decorated, "/api/v1/test-admin/<item:str>", methods=["GET"])
    app.add_route(inline, "/api/v1/test-admin", methods=["POST"])
    async with serving(app) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v1/test-admin/x"), ("POST", "/api/v1/test-admin")]
)
async def test_guard_outcomes(guarded: httpx.AsyncClient, method: str, path: str) -> None:
    anonymous = await guarded.request(method, path)
    assert (anonymous.status_code, anonymous.json()) == (401, REQUIRED)
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    spoofed = await guarded.request(
        method, path, headers={"X-Admin": "true", "X-Roles": "admin", "X-Steam-ID": "steam:1"}
    )
    assert (spoofed.status_code, spoofed.json()) == (401, REQUIRED)
    player = await guarded.request(method, path, headers=bearer(PLAYER))
    assert (player.status_code, player.json()) == (403, FORBIDDEN)
    bad = await guarded.request(method, path, headers=bearer(ADMIN[:-4] + "AAAA"))
    assert (bad.status_code, bad.json()["error"]) == (401, "authentication_failed")
    admin = await guarded.request(method, path, headers=bearer(ADMIN))
    assert admin.status_code == 200
    assert admin.json()["admin"] == "Root"


async def test_decorated_handler_keeps_its_arguments(guarded: httpx.AsyncClient) -> None:
    response = await guarded.get("/api/v1/test-admin/feedback", headers=bearer(ADMIN))
    assert response.json() == {"item": "feedback", "admin": "Root"}
    inline = await guarded.post("/api/v1/test-admin", headers=bearer(ADMIN))
    assert inline.json() == {"admin": "Root", "roles": ["admin", "moderator"]}
