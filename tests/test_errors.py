"""Every error leaves in the contract shape {error, message, status[, details]}: full bodies."""

from __future__ import annotations

import httpx
import pytest

from service.builds.store import seed_templates
from service.contract.gamedata import TEMPLATES
from tests.factories import (
    API,
    create_build,
    error,
    headers,
    new_session,
    validation,
)


async def test_validation_error_lists_every_problem(client: httpx.AsyncClient) -> None:
    body = {
        "name": "   ",
        "primary_archetype": "wizard",
        "secondary_archetype": "Bard",
        "race": "elf",
    }
    response = await client.post(f"{API}/builds", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json() == error(
        "validation_error",
        "name: must be 1-100 characters after trimming",
        422,
        [
            {"field": "name", "problem": "must be 1-100 characters after trimming"},
            {"field": "primary_archetype", "problem": "unknown value 'wizard'"},
            {"field": "race", "problem": "unknown value 'elf'"},
        ],
    )


async def test_missing_field(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/builds", json={"name": "x", "race": "vek"})
    assert response.status_code == 422
    assert response.json() == validation(
        "primary_archetype", "Object missing required field `primary_archetype`"
    )


async def test_wrong_type(client: httpx.AsyncClient) -> None:
    body = {"name": "x", "primary_archetype": "tank", "secondary_archetype": "tank", "race": "vek"}
    response = await client.post(f"{API}/builds", json={**body, "is_public": "yes"})
    assert response.status_code == 422
    assert response.json() == validation("is_public", "Expected `bool`, got `str`")


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/builds", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == validation("body", "Input data was truncated")


async def test_invalid_json_token(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/feedback", content=b"{'query': 1}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == validation(
        "body", "JSON is malformed: object keys must be strings (byte 1)"
    )


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        (b'{"name": "a\xffb"}', "body", "JSON is malformed: invalid UTF-8"),
        (
            b'{"name": "a\\u0000b", "primary_archetype": "tank", "secondary_archetype": "tank",'
            b' "race": "vek"}',
            "name",
            "must not contain NUL characters",
        ),
        (
            b'{"name": "a\\ud800b", "race": "vek"}',
            "body",
            "JSON is malformed: unexpected end of escaped utf-16 surrogate pair (byte 17)",
        ),
    ],
    ids=["invalid-utf8", "nul", "lone-surrogate"],
)
async def test_text_postgres_cannot_store_is_rejected(
    client: httpx.AsyncClient, sql, raw: bytes, field: str, problem: str
) -> None:
    response = await client.post(
        f"{API}/builds", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == validation(field, problem)
    assert await sql.fetchval("SELECT count(*) FROM builds") == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_wrong_content_type(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.post(
        f"{API}/builds", content=b'{"name": "x"}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 422
    assert response.json() == validation("content-type", "must be application/json")


async def test_json_content_type_with_charset_is_accepted(client: httpx.AsyncClient) -> None:
    body = b'{"name":"x","primary_archetype":"tank","secondary_archetype":"tank","race":"vek"}'
    response = await client.post(
        f"{API}/builds", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 201


async def test_empty_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/builds", content=b"", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == validation("body", "a JSON object is required")


@pytest.mark.parametrize(
    ("raw", "kind"), [(b"[]", "array"), (b'"text"', "str"), (b"42", "int"), (b"null", "null")]
)
async def test_body_must_be_an_object(client: httpx.AsyncClient, raw: bytes, kind: str) -> None:
    response = await client.post(
        f"{API}/builds", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == validation("body", f"Expected `object`, got `{kind}`")


async def test_bad_query_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/builds", params={"page": "two"})
    assert response.status_code == 422
    assert response.json() == validation("page", "Expected `int`, got `str`")


async def test_unknown_route(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/nothing")
    assert response.status_code == 404
    assert response.json() == error("not_found", "No route matches this URL", 404)
    outside = await client.post("/no/such/path", json={})
    assert outside.status_code == 404
    assert outside.json() == error("not_found", "No route matches this URL", 404)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("PUT", f"{API}/builds"),
        ("DELETE", f"{API}/builds"),
        ("POST", "/health"),
        ("PUT", f"{API}/builds/b_00000000"),
        ("GET", f"{API}/feedback"),
    ],
)
async def test_wrong_method(client: httpx.AsyncClient, method: str, url: str) -> None:
    response = await client.request(method, url)
    assert response.status_code == 405
    assert response.json() == error(
        "method_not_allowed", f"Method {method} not allowed for this URL", 405
    )
    assert "Allow" in response.headers


async def test_build_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/builds/b_0badc0de")
    assert response.status_code == 404
    assert response.json() == error("build_not_found", "Build b_0badc0de not found", 404)


async def test_not_owner(client: httpx.AsyncClient) -> None:
    build = await create_build(client, new_session())
    build_id = build["build_id"]
    response = await client.delete(f"{API}/builds/{build_id}", headers=headers(new_session()))
    assert response.status_code == 403
    assert response.json() == error(
        "not_owner", f"Build {build_id} belongs to another session", 403
    )


async def test_template_read_only(client: httpx.AsyncClient) -> None:
    await seed_templates()
    build_id = TEMPLATES[0].build_id
    response = await client.patch(
        f"{API}/builds/{build_id}", json={"name": "mine now"}, headers=headers(new_session())
    )
    assert response.status_code == 403
    assert response.json() == error(
        "template_read_only", f"Build {build_id} is an official template and is read-only", 403
    )


async def test_internal_error_hides_details(failing_client: httpx.AsyncClient) -> None:
    response = await failing_client.post("/test/boom", json={"a": 1})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == error("internal_error", "Internal server error", 500)
    for leak in ("Traceback", "RuntimeError", "secret", "builds.py"):
        assert leak not in response.text


@pytest.mark.parametrize(
    "settings_overrides", [{"database_url": "postgresql://postgres@127.0.0.1:1/x"}], indirect=True
)
async def test_unreachable_postgres_is_service_unavailable(client: httpx.AsyncClient) -> None:
    """A store that cannot be reached is a 503 with Retry-After, never a 500."""
    for request in (
        client.build_request("GET", f"{API}/builds"),
        client.build_request("GET", f"{API}/builds/b_0000abcd"),
        client.build_request(
            "POST",
            f"{API}/builds",
            json={
                "name": "x",
                "primary_archetype": "tank",
                "secondary_archetype": "tank",
                "race": "vek",
            },
        ),
    ):
        response = await client.send(request)
        assert response.status_code == 503
        assert response.json() == error(
            "service_unavailable", "A backing service is unavailable, retry later", 503
        )
        assert response.headers["Retry-After"] == "5"
