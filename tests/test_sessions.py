"""X-Session-ID: validated, generated when missing or malformed, echoed on every response."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import API, SESSION_RE, build_body, create_build, headers, new_session

MALFORMED = [
    pytest.param("sess_" + "AB" * 12, id="uppercase-hex"),
    pytest.param("sess_" + "a" * 23, id="too-short"),
    pytest.param("sess_" + "a" * 25, id="too-long"),
    pytest.param("user_" + "a" * 24, id="other-prefix"),
    pytest.param("SESS_" + "a" * 24, id="uppercase-prefix"),
    pytest.param("sess_" + "g" * 24, id="not-hex"),
    pytest.param("sess-" + "a" * 24, id="dash"),
    pytest.param("", id="empty"),
    pytest.param("sess_" + "a" * 24 + ",sess_" + "b" * 24, id="two-values"),
]


async def test_valid_session_is_echoed(client: httpx.AsyncClient) -> None:
    session = new_session()
    response = await client.get(f"{API}/builds", headers=headers(session))
    assert response.status_code == 200
    assert response.headers["X-Session-ID"] == session


async def test_missing_session_gets_a_fresh_one_per_request(client: httpx.AsyncClient) -> None:
    first = await client.get(f"{API}/builds")
    second = await client.get(f"{API}/builds")
    assert first.status_code == second.status_code == 200
    assert SESSION_RE.match(first.headers["X-Session-ID"])
    assert SESSION_RE.match(second.headers["X-Session-ID"])
    assert first.headers["X-Session-ID"] != second.headers["X-Session-ID"]


@pytest.mark.parametrize("sent", MALFORMED)
async def test_malformed_session_is_replaced(client: httpx.AsyncClient, sent: str) -> None:
    response = await client.get(f"{API}/builds", headers={"X-Session-ID": sent})
    assert response.status_code == 200
    issued = response.headers["X-Session-ID"]
    assert issued != sent
    assert SESSION_RE.match(issued)


async def test_generated_session_owns_what_it_created(client: httpx.AsyncClient, sql) -> None:
    """A build created under a malformed header belongs to the session the server issued."""
    response = await client.post(
        f"{API}/builds",
        json=build_body(is_public=False),
        headers={"X-Session-ID": "sess_" + "F" * 24},
    )
    assert response.status_code == 201
    issued = response.headers["X-Session-ID"]
    build_id = response.json()["build_id"]
    owner = await sql.fetchval("SELECT owner_session FROM builds WHERE build_id = $1", build_id)
    assert owner == issued
    mine = await client.get(f"{API}/builds/{build_id}", headers=headers(issued))
    assert mine.status_code == 200


async def test_valid_session_is_stored_as_owner(client: httpx.AsyncClient, sql) -> None:
    session = new_session()
    build = await create_build(client, session)
    owner = await sql.fetchval(
        "SELECT owner_session FROM builds WHERE build_id = $1", build["build_id"]
    )
    assert owner == session


ERROR_REQUESTS = [
    pytest.param("GET", "/api/v1/nothing-here", {}, 404, id="404-unknown-route"),
    pytest.param("PUT", f"{API}/builds", {"json": {}}, 405, id="405-wrong-method"),
    pytest.param(
        "POST",
        f"{API}/builds",
        {"content": b"x" * (64 * 1024 + 1), "headers": {"Content-Type": "application/json"}},
        413,
        id="413-too-large",
    ),
    pytest.param("POST", f"{API}/builds", {"json": {"name": "x"}}, 422, id="422-validation"),
    pytest.param("GET", f"{API}/builds/b_00000000", {}, 404, id="404-build"),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "status"), ERROR_REQUESTS)
async def test_session_echoed_on_errors(
    client: httpx.AsyncClient, method: str, url: str, kwargs: dict, status: int
) -> None:
    session = new_session()
    extra = kwargs.pop("headers", {})
    response = await client.request(
        method, url, headers={**extra, "X-Session-ID": session}, **kwargs
    )
    assert response.status_code == status
    assert response.headers["X-Session-ID"] == session
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("method", "url", "kwargs", "status"), ERROR_REQUESTS)
async def test_session_generated_on_errors(
    client: httpx.AsyncClient, method: str, url: str, kwargs: dict, status: int
) -> None:
    response = await client.request(method, url, **kwargs)
    assert response.status_code == status
    assert SESSION_RE.match(response.headers["X-Session-ID"])


async def test_session_echoed_on_internal_error(failing_client: httpx.AsyncClient) -> None:
    session = new_session()
    response = await failing_client.get("/test/boom", headers=headers(session))
    assert response.status_code == 500
    assert response.headers["X-Session-ID"] == session
    assert response.headers["Cache-Control"] == "no-store"
    fresh = await failing_client.get("/test/boom")
    assert fresh.status_code == 500
    assert SESSION_RE.match(fresh.headers["X-Session-ID"])


async def test_session_echoed_on_health_and_preflight(client: httpx.AsyncClient) -> None:
    session = new_session()
    health = await client.get("/health/live", headers=headers(session))
    assert health.headers["X-Session-ID"] == session
    preflight = await client.options(
        f"{API}/builds",
        headers={
            "Origin": "https://myashes.ai",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-Session-ID, Content-Type",
            "X-Session-ID": session,
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["X-Session-ID"] == session


@pytest.mark.parametrize(
    "url",
    [f"{API}/builds", f"{API}/builds/templates", "/health", "/health/live", "/openapi.json"],
)
async def test_every_response_is_no_store(client: httpx.AsyncClient, url: str) -> None:
    """Contract: responses carry a session id, so no browser or shared cache may keep them."""
    response = await client.get(url, headers=headers(new_session()))
    assert (response.status_code, response.headers["Cache-Control"]) == (200, "no-store")


def _exposed(response: httpx.Response) -> set[str]:
    raw = response.headers.get("Access-Control-Expose-Headers", "")
    return {item.strip().lower() for item in raw.split(",") if item.strip()}


EXPOSED = {"x-session-id", "retry-after", "x-ratelimit-limit", "x-ratelimit-remaining"}


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [("GET", f"{API}/builds", 200), ("GET", f"{API}/nope", 404), ("POST", f"{API}/builds", 422)],
)
async def test_cors_exposes_session_header(
    client: httpx.AsyncClient, method: str, url: str, status: int
) -> None:
    origin = "http://localhost:3000"
    response = await client.request(method, url, headers={"Origin": origin})
    assert response.status_code == status
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert EXPOSED | {"x-ratelimit-reset"} <= _exposed(response)


async def test_cors_preflight_allows_session_header(client: httpx.AsyncClient) -> None:
    response = await client.options(
        f"{API}/builds",
        headers={
            "Origin": "https://www.myashes.ai",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-session-id,content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://www.myashes.ai"
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert {"x-session-id", "content-type"} <= allowed
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST"} <= methods


async def test_cors_ignores_unknown_origin(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/builds", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Expose-Headers" not in response.headers


async def test_other_sessions_never_appear_in_responses(client: httpx.AsyncClient) -> None:
    owner = new_session()
    build = await create_build(client, owner)
    viewer = new_session()
    for url in (f"{API}/builds/{build['build_id']}", f"{API}/builds", f"{API}/builds/popular"):
        response = await client.get(url, headers=headers(viewer))
        assert response.status_code == 200
        assert owner not in response.text
        assert owner[5:] not in response.text
    # Not even to the owner: the build object has no session field.
    mine = await client.get(f"{API}/builds/{build['build_id']}", headers=headers(owner))
    assert owner not in mine.text
    assert mine.headers["X-Session-ID"] == owner
