"""Hostile request bodies on every endpoint that takes one: a 4xx in the contract shape, a
session echoed, nothing stored, never a 500."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.ctx import App
from tests.factories import API, build_body, headers, new_session

JSON = {"Content-Type": "application/json"}
OWNER = new_session()
Case = tuple[bytes, dict[str, str], int]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {build} is the id of a build owned by OWNER
    valid: dict[str, Any]
    text_field: str | None
    int_field: str | None


ENDPOINTS = {
    "create-build": Endpoint("POST", "/builds", build_body(), "name", None),
    "patch-build": Endpoint("PATCH", "/builds/{build}", {"name": "New"}, "name", None),
    "vote": Endpoint("POST", "/builds/{build}/vote", {"rating": 4}, None, "rating"),
    "feedback": Endpoint(
        "POST",
        "/feedback",
        {"query": "q", "response_snippet": "a", "search_mode": "quick", "rating": "up"},
        "query",
        None,
    ),
    "search": Endpoint(
        "POST",
        "/analytics/search",
        {"query": "tank", "search_mode": "smart", "result_count": 1},
        "query",
        "result_count",
    ),
}


def _raw(body: dict[str, Any], field: str, raw: bytes) -> bytes:
    """`body` as JSON with `field`'s value replaced by raw JSON text."""
    marker = "\x01MARK\x01"
    text = json.dumps({**body, field: marker}).encode()
    return text.replace(json.dumps(marker).encode(), raw)


def _nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + b"1" + closer * depth


def generic_cases(e: Endpoint) -> dict[str, Case]:
    ok = json.dumps(e.valid).encode()
    extra = "zz_extra"  # an ignored field still has to be parsed
    return {
        "content-type text/plain": (ok, {"Content-Type": "text/plain"}, 422),
        "content-type form": (
            b"name=x",
            {"Content-Type": "application/x-www-form-urlencoded"},
            422,
        ),
        "content-type multipart": (
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--b--\r\n',
            {"Content-Type": "multipart/form-data; boundary=b"},
            422,
        ),
        "empty body": (b"", JSON, 422),
        "whitespace body": (b" \r\n\t ", JSON, 422),
        "array instead of object": (b"[" + ok + b"]", JSON, 422),
        "string instead of object": (b'"x"', JSON, 422),
        "number instead of object": (b"42", JSON, 422),
        "null instead of object": (b"null", JSON, 422),
        "utf-8 BOM": (b"\xef\xbb\xbf" + ok, JSON, 422),
        "utf-16": (ok.decode().encode("utf-16"), JSON, 422),
        "trailing garbage": (ok + b" x", JSON, 422),
        "two documents": (ok + b"{}", JSON, 422),
        "truncated": (ok[:-3], JSON, 422),
        "single quotes": (ok.replace(b'"', b"'"), JSON, 422),
        "comment": (b"/* c */" + ok, JSON, 422),
        "invalid utf-8": (_raw(e.valid, extra, b'"a\xffb"'), JSON, 422),
        "overlong utf-8": (_raw(e.valid, extra, b'"a\xc0\xafb"'), JSON, 422),
        "raw NUL byte": (_raw(e.valid, extra, b'"a\x00b"'), JSON, 422),
        "raw control char": (_raw(e.valid, extra, b'"a\x01b"'), JSON, 422),
        "nested arrays x5000": (_raw(e.valid, extra, _nested(5000, b"[", b"]")), JSON, 422),
        "nested objects x3000": (_raw(e.valid, extra, _nested(3000, b'{"a":', b"}")), JSON, 422),
        "over 64 KiB": (_raw(e.valid, extra, b'"' + b"x" * 65536 + b'"'), JSON, 413),
    }


def text_cases(field: str, valid: dict[str, Any]) -> dict[str, Case]:
    raw = {
        "escaped NUL": b'"a\\u0000b"',
        "lone high surrogate": b'"a\\ud800b"',
        "lone low surrogate": b'"a\\udc00"',
        "surrogate as raw utf-8": b'"a\xed\xa0\x80b"',
        "array in a text field": b'["a"]',
        "nested arrays in a text field": _nested(2000, b"[", b"]"),
    }
    return {name: (_raw(valid, field, value), JSON, 422) for name, value in raw.items()}


def number_cases(field: str, valid: dict[str, Any]) -> dict[str, Case]:
    raw = {
        "1e309": b"1e309",
        "-1e309": b"-1e309",
        "1e99999999999": b"1e99999999999",
        "2**70": str(2**70).encode(),
        "-(2**70)": str(-(2**70)).encode(),
        "2**63": str(2**63).encode(),
        "10000 digits": b"9" * 10000,
        "NaN": b"NaN",
        "Infinity": b"Infinity",
        "float": b"4.5",
        "integral float": b"4.0",
        "bool": b"true",
        "numeric string": b'"4"',
        "null": b"null",
    }
    return {name: (_raw(valid, field, value), JSON, 422) for name, value in raw.items()}


def all_cases(e: Endpoint) -> dict[str, Case]:
    cases = generic_cases(e)
    if e.text_field:
        cases |= text_cases(e.text_field, e.valid)
    if e.int_field:
        cases |= number_cases(e.int_field, e.valid)
    return cases


def problems_in(response: httpx.Response, status: int) -> list[str]:
    """What is wrong with an error response (empty when it is exactly right)."""
    found = []
    if response.status_code != status:
        found.append(f"status {response.status_code} != {status}: {response.text[:200]}")
    if response.headers.get("content-type") != "application/json":
        found.append(f"content-type {response.headers.get('content-type')}")
    if "X-Session-ID" not in response.headers:
        found.append("no X-Session-ID")
    body = response.json()
    code = "payload_too_large" if status == 413 else "validation_error"
    if {k: body.get(k) for k in ("error", "status")} != {"error": code, "status": status}:
        found.append(f"body {body}")
    if not isinstance(body.get("message"), str) or set(body) - {
        "error",
        "message",
        "status",
        "details",
    }:
        found.append(f"shape {body}")
    for detail in body.get("details", []):
        if set(detail) != {"field", "problem"}:
            found.append(f"detail {detail}")
    return found


@pytest.mark.parametrize("name", list(ENDPOINTS))
async def test_bad_bodies_are_refused_and_nothing_is_stored(
    app: App, client: httpx.AsyncClient, sql, name: str
) -> None:
    created = await client.post(f"{API}/builds", json=build_body(), headers=headers(OWNER))
    build = created.json()
    endpoint = ENDPOINTS[name]
    path = API + endpoint.path.format(build=build["build_id"])
    failures = []
    cases = all_cases(endpoint)
    for case, (body, sent_headers, status) in cases.items():
        response = await client.request(
            endpoint.method, path, content=body, headers={**headers(OWNER), **sent_headers}
        )
        failures += [f"{case}: {problem}" for problem in problems_in(response, status)]
    assert failures == []
    assert len(cases) >= 23
    # Nothing was stored: only the one build made above, unchanged.
    assert await sql.fetchval("SELECT count(*) FROM builds") == 1
    row = await sql.fetchrow("SELECT name, updated_at, vote_count FROM builds")
    assert (row["name"], row["vote_count"]) == (build["name"], 0)
    assert await sql.fetchval("SELECT count(*) FROM build_votes") == 0
    assert await sql.fetchval("SELECT count(*) FROM feedback") == 0
    assert app.ctx.search.depth == 0


async def test_the_good_body_of_each_endpoint_passes(client: httpx.AsyncClient) -> None:
    """The cases above differ from an accepted body only in what they break."""
    build_id = (
        await client.post(f"{API}/builds", json=build_body(), headers=headers(OWNER))
    ).json()["build_id"]
    statuses = {}
    for name, e in ENDPOINTS.items():
        response = await client.request(
            e.method,
            API + e.path.format(build=build_id),
            content=json.dumps(e.valid).encode(),
            headers={**headers(OWNER), **JSON},
        )
        statuses[name] = response.status_code
    assert statuses == {
        "create-build": 201,
        "patch-build": 200,
        "vote": 200,
        "feedback": 201,
        "search": 201,
    }


async def test_patch_refuses_fields_it_does_not_change(client: httpx.AsyncClient) -> None:
    build_id = (
        await client.post(f"{API}/builds", json=build_body(), headers=headers(OWNER))
    ).json()["build_id"]
    response = await client.patch(
        f"{API}/builds/{build_id}",
        json={"name": "x", "owner": "sess_" + "0" * 24},
        headers=headers(OWNER),
    )
    assert response.status_code == 422
    assert response.json()["details"] == [
        {"field": "owner", "problem": "Object contains unknown field `owner`"}
    ]
