"""Cross-site writes (issue 17, item 3): a body needs Content-Type: application/json, so a page
on another site cannot make its visitors write here without a CORS preflight.

The types a browser sends cross-site without a preflight are none at all, text/plain,
application/x-www-form-urlencoded and multipart/form-data: every one is refused with 422 on
every endpoint that takes a body, and nothing is stored.
"""

from __future__ import annotations

import json

import httpx
import pytest

from service.ctx import App
from tests.factories import API, build_body, create_build, headers, new_session, validation

EVIL = {"Origin": "https://evil.example"}
FEEDBACK = {"query": "q", "response_snippet": "a", "search_mode": "quick", "rating": "up"}
SEARCH = {"query": "tank", "search_mode": "smart", "result_count": 1}
# Content types a cross-site <form> or fetch(no-cors) can send without a preflight.
SIMPLE = {
    "none": None,
    "empty": "",
    "text/plain": "text/plain",
    "form": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data; boundary=b",
}


def _headers(session: str, content_type: str | None) -> dict[str, str]:
    sent = {**headers(session), **EVIL}
    if content_type is not None:
        sent["Content-Type"] = content_type
    return sent


@pytest.mark.parametrize("kind", list(SIMPLE))
async def test_writes_without_a_json_content_type_are_refused(
    app: App, client: httpx.AsyncClient, sql, kind: str
) -> None:
    owner = new_session()
    build = await create_build(client, owner)
    content_type = SIMPLE[kind]
    writes = {
        "create": ("POST", "/builds", build_body(name="Cross-site")),
        "patch": ("PATCH", f"/builds/{build['build_id']}", {"name": "Cross-site"}),
        "vote": ("POST", f"/builds/{build['build_id']}/vote", {"rating": 5}),
        "feedback": ("POST", "/feedback", FEEDBACK),
        "search": ("POST", "/analytics/search", SEARCH),
    }
    answers = {}
    for name, (method, path, body) in writes.items():
        response = await client.request(
            method,
            API + path,
            content=json.dumps(body).encode(),
            headers=_headers(owner, content_type),
        )
        answers[name] = (response.status_code, response.json()["error"])
    assert answers == dict.fromkeys(writes, (422, "validation_error"))
    assert await sql.fetchval("SELECT count(*) FROM builds") == 1
    assert await sql.fetchval("SELECT name FROM builds") == build["name"]
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0
    assert await sql.fetchval("SELECT count(*) FROM feedback") == 0
    assert app.ctx.search.depth == 0


async def test_missing_content_type_names_the_header(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/analytics/search", content=json.dumps(SEARCH).encode(), headers=EVIL
    )
    assert response.status_code == 422
    assert response.json() == validation("content-type", "required: application/json")


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
async def test_json_content_types_are_accepted(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post(
        f"{API}/analytics/search",
        content=json.dumps(SEARCH).encode(),
        headers={**headers(new_session()), "Content-Type": content_type},
    )
    assert (response.status_code, response.json()) == (201, {"recorded": True})
