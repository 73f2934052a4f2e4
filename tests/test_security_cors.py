"""CORS exactly per contract: origins from settings, the contract's methods and headers,
preflights for PATCH and DELETE, and nothing at all for an origin that is not allowed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.config import DEFAULT_CORS_ORIGINS
from tests.factories import API, build_body, headers, new_session

EXPOSED = {
    "x-session-id",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "www-authenticate",
}
CONTRACT_METHODS = {"GET", "POST", "PATCH", "DELETE", "OPTIONS"}


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


def listed(value: str) -> set[str]:
    return {item.strip() for item in value.split(",") if item.strip()}


def preflight(method: str, origin: str, request_headers: str = "content-type, x-session-id"):
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": request_headers,
    }


def test_default_origins_are_the_contracts() -> None:
    assert DEFAULT_CORS_ORIGINS == (
        "https://myashes.ai",
        "https://www.myashes.ai",
        "http://localhost:3000",
        "http://localhost:8080",
        "http://127.0.0.1:8080",
    )


@pytest.mark.parametrize("origin", DEFAULT_CORS_ORIGINS)
async def test_allowed_origin_gets_exposed_headers(client: httpx.AsyncClient, origin: str) -> None:
    response = await client.get(f"{API}/builds", headers={"Origin": origin})
    assert response.status_code == 200
    found = cors_headers(response)
    assert found["access-control-allow-origin"] == origin
    # The contract's six; X-Request-ID (request logs) is the only addition.
    assert listed(found["access-control-expose-headers"]) - {"x-request-id"} == EXPOSED
    assert "access-control-allow-credentials" not in found
    assert response.headers["vary"].lower() == "origin"


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_preflight_for_patch_and_delete(client: httpx.AsyncClient, method: str) -> None:
    build = (
        await client.post(f"{API}/builds", json=build_body(), headers=headers(new_session()))
    ).json()
    response = await client.options(
        f"{API}/builds/{build['build_id']}", headers=preflight(method, "https://myashes.ai")
    )
    assert response.status_code == 204
    found = cors_headers(response)
    assert found["access-control-allow-origin"] == "https://myashes.ai"
    methods = listed(found["access-control-allow-methods"])
    assert method in methods
    assert methods <= CONTRACT_METHODS
    assert listed(found["access-control-allow-headers"]) == {"content-type", "x-session-id"}
    bearer = await client.options(
        f"{API}/builds/{build['build_id']}",
        headers=preflight(method, "https://myashes.ai", "authorization, x-session-id"),
    )
    assert listed(cors_headers(bearer)["access-control-allow-headers"]) == {
        "authorization",
        "x-session-id",
    }
    assert found["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in found


async def test_preflight_allows_only_the_contracts_request_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        f"{API}/builds",
        headers=preflight(
            "POST", "http://localhost:3000", "X-Session-ID, Authorization, X-Evil, X-Steam-ID"
        ),
    )
    assert listed(cors_headers(response)["access-control-allow-headers"]) == {
        "x-session-id",
        "authorization",
    }


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://myashes.ai.evil.example",
        "https://evilmyashes.ai",
        "http://myashes.ai",  # scheme differs
        "https://myashes.ai:8443",  # port differs
        "https://myashes.ai/",
        "null",
        "http://localhost:3001",
    ],
)
async def test_disallowed_origin_gets_no_cors_headers(
    client: httpx.AsyncClient, origin: str
) -> None:
    simple = await client.get(f"{API}/builds", headers={"Origin": origin})
    assert simple.status_code == 200  # CORS is enforced by the browser; the server stays silent
    assert cors_headers(simple) == {}
    for method in ("PATCH", "DELETE", "POST"):
        response = await client.options(
            f"{API}/builds/b_12345678", headers=preflight(method, origin)
        )
        assert cors_headers(response) == {}


async def test_no_origin_no_cors_headers(client: httpx.AsyncClient) -> None:
    assert cors_headers(await client.get(f"{API}/builds")) == {}


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_enabled": True, "rate_limit_build_create": 1}],
    indirect=True,
)
async def test_errors_are_readable_by_an_allowed_origin(client: httpx.AsyncClient) -> None:
    """A browser can only read a 429's Retry-After (or any error) with the CORS headers."""
    sent = {"Origin": "https://www.myashes.ai", **headers(new_session())}
    await client.post(f"{API}/builds", json=build_body(), headers=sent)
    limited = await client.post(f"{API}/builds", json=build_body(), headers=sent)
    missing = await client.get(f"{API}/nothing", headers=sent)
    for response in (limited, missing):
        assert response.status_code in (429, 404)
        assert cors_headers(response)["access-control-allow-origin"] == "https://www.myashes.ai"
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers


@pytest.mark.parametrize(
    "settings_overrides", [{"cors_origins": ("https://staging.myashes.ai",)}], indirect=True
)
async def test_origins_come_from_settings(client: httpx.AsyncClient) -> None:
    ok = await client.get(f"{API}/builds", headers={"Origin": "https://staging.myashes.ai"})
    assert cors_headers(ok)["access-control-allow-origin"] == "https://staging.myashes.ai"
    gone = await client.get(f"{API}/builds", headers={"Origin": "https://myashes.ai"})
    assert cors_headers(gone) == {}


def test_settings_read_origins_from_the_environment() -> None:
    from service.config import Settings

    parsed: Any = Settings.from_env({"CORS_ORIGINS": "https://a.example, https://b.example"})
    assert parsed.cors_origins == ("https://a.example", "https://b.example")
