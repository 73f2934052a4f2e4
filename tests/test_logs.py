"""Structured logs: one JSON line per request with a hashed session, X-Request-ID accepted or
generated and echoed on every response, one summary line per worker at stop, level from
Settings."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.telemetry.logs import hash_session
from tests.apps import serving
from tests.conftest import Stores, clean_stores, make_settings
from tests.factories import API, headers, new_session

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` as JSON: a line that is not JSON fails the test."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def access_lines(text: str) -> list[dict[str, Any]]:
    return [e for e in json_lines(text) if e["logger"] == "myashes.access"]


async def test_one_json_line_per_request_with_a_hashed_session(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
):
    session = new_session()
    capsys.readouterr()
    r = await client.post(
        f"{API}/analytics/search",
        json={"query": "tank", "search_mode": "quick", "result_count": 1},
        headers={**headers(session), "X-Request-ID": "req-0001"},
    )
    assert r.status_code == 201
    r = await client.get(f"{API}/builds/b_00000000", headers={"X-Request-ID": "req-0002"})
    assert r.status_code == 404
    err = capsys.readouterr().err
    assert session not in err
    assert session[5:] not in err  # not even the hex part
    first, second = access_lines(err)
    assert first == {
        "ts": first["ts"],
        "level": "INFO",
        "logger": "myashes.access",
        "pid": os.getpid(),
        "msg": "request",
        "method": "POST",
        "route": "/api/v1/analytics/search",
        "path": "/api/v1/analytics/search",
        "status": 201,
        "duration_ms": first["duration_ms"],
        "request_id": "req-0001",
        "session": hash_session(session),
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert re.fullmatch(r"[0-9a-f]{12}", first["session"])
    assert isinstance(first["duration_ms"], float)
    assert first["duration_ms"] >= 0
    assert second["route"] == "/api/v1/builds/<build_id:str>"
    assert second["status"] == 404
    assert second["request_id"] == "req-0002"
    assert re.fullmatch(r"[0-9a-f]{12}", second["session"])  # a generated session, hashed


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("Root=1-67891233-abcdef012345678912345678", True),
        ("YWJjZGVm+/=_.:", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("has space", False),
        ('quote"injection', False),
        ("new\\nline", False),
        ("ünïcode", False),
    ],
)
async def test_request_id_is_accepted_when_sane_else_generated(
    client: httpx.AsyncClient, sent: str, kept: bool
):
    r = await client.get("/health/live", headers={"X-Request-ID": sent.encode()})
    echoed = r.headers["X-Request-ID"]
    if kept:
        assert echoed == sent
    else:
        assert GENERATED_ID.fullmatch(echoed), echoed


async def test_request_id_is_generated_and_echoed_on_every_response(client: httpx.AsyncClient):
    responses = [
        await client.get("/health/live"),
        await client.get("/no/such/route"),
        await client.delete("/health"),
        await client.post(f"{API}/builds", content=b"{not json"),
        await client.post(f"{API}/builds", content=b"x" * (65 * 1024)),
        await client.options(f"{API}/builds", headers={"Origin": "https://myashes.ai"}),
    ]
    assert [r.status_code for r in responses][:5] == [200, 404, 405, 422, 413]
    ids = [r.headers["X-Request-ID"] for r in responses]
    assert all(GENERATED_ID.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


async def test_request_id_is_exposed_to_browsers(client: httpx.AsyncClient):
    r = await client.get("/health/live", headers={"Origin": "https://myashes.ai"})
    exposed = {h.strip().lower() for h in r.headers["Access-Control-Expose-Headers"].split(",")}
    assert "x-request-id" in exposed


async def test_an_unexpected_error_logs_json_with_the_request_id(
    failing_client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
):
    capsys.readouterr()
    r = await failing_client.get("/test/boom", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.headers["X-Request-ID"] == "boom-1"
    entries = json_lines(capsys.readouterr().err)
    (error,) = [e for e in entries if e["logger"] == "myashes.errors"]
    assert error["level"] == "ERROR"
    assert error["request_id"] == "boom-1"
    assert "RuntimeError" in error["exc"]
    (access,) = [e for e in entries if e["logger"] == "myashes.access"]
    assert (access["status"], access["route"]) == (500, "/test/boom")


async def test_worker_writes_one_summary_line_at_stop(
    stores: Stores, capsys: pytest.CaptureFixture[str]
):
    await clean_stores(stores)
    app = create_app(make_settings(stores, search_buffer_max_events=3))
    async with serving(app) as client:
        for i in range(4):
            await client.post(
                f"{API}/analytics/search",
                json={"query": f"q{i}", "search_mode": "deep", "result_count": 0},
            )
        capsys.readouterr()
    (summary,) = [e for e in json_lines(capsys.readouterr().err) if e["msg"] == "worker stopped"]
    assert summary["level"] == "INFO"
    assert summary["pending"] == 0
    assert summary["aggregators"]["search"] == {
        "accepted": 3,
        "flushed": 3,  # by the final flush at stop
        "rejected": 1,
        "failures": 0,
        "pending": 0,
    }
    assert summary["aggregators"]["votes"]["pending"] == 0


async def test_log_level_comes_from_settings(stores: Stores, capsys: pytest.CaptureFixture[str]):
    await clean_stores(stores)
    app = create_app(make_settings(stores, log_level="WARNING"))
    async with serving(app) as client:
        capsys.readouterr()
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/no/such/route")).status_code == 404
        assert access_lines(capsys.readouterr().err) == []


@pytest.mark.parametrize(
    "settings_overrides", [{"rate_limit_enabled": True, "rate_limit_read": 1}], indirect=True
)
async def test_request_id_is_echoed_on_rate_limited_responses(client: httpx.AsyncClient):
    session = headers(new_session())
    assert (await client.get(f"{API}/builds", headers=session)).status_code == 200
    limited = await client.get(f"{API}/builds", headers={**session, "X-Request-ID": "rl-1"})
    assert limited.status_code == 429
    assert limited.headers["X-Request-ID"] == "rl-1"
