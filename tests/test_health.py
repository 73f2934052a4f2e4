"""/health, /health/live, /health/ready with both stores up, Postgres down, Valkey down."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service import __version__
from service.ctx import App
from tests.factories import error

DEAD_POSTGRES = {"database_url": "postgresql://postgres@127.0.0.1:1/x"}
DEAD_VALKEY = {"valkey_url": "redis://127.0.0.1:1/0"}


def check_shape(body: dict[str, Any]) -> None:
    assert set(body) == {"status", "version", "uptime_seconds", "checks"}
    assert body["version"] == __version__
    assert isinstance(body["uptime_seconds"], int | float)
    assert body["uptime_seconds"] >= 0
    assert set(body["checks"]) == {"postgres", "valkey", "aggregators", "rate_limits"}
    assert body["checks"]["rate_limits"] == {"enforced": None}  # limits are off in tests
    aggregators = body["checks"]["aggregators"]
    assert set(aggregators) == {"buffered", "last_flush_age_s"}
    assert isinstance(aggregators["buffered"], int)


def check_up(check: dict[str, Any]) -> None:
    assert check["ok"] is True
    assert isinstance(check["latency_ms"], int | float)
    assert check["latency_ms"] >= 0


def check_down(check: dict[str, Any]) -> None:
    assert check["ok"] is False
    assert check["latency_ms"] is None


async def test_health_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    check_shape(body)
    assert body["status"] == "ok"
    check_up(body["checks"]["postgres"])
    check_up(body["checks"]["valkey"])


async def test_live_and_ready(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = await client.get("/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize("settings_overrides", [DEAD_POSTGRES], indirect=True)
async def test_postgres_down(client: httpx.AsyncClient) -> None:
    """The app starts without Postgres; health says down (503), ready is a 503 error."""
    response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    check_shape(body)
    assert body["status"] == "down"
    check_down(body["checks"]["postgres"])
    check_up(body["checks"]["valkey"])
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json() == error("service_unavailable", "PostgreSQL is unreachable", 503)
    assert int(ready.headers["Retry-After"]) >= 1
    live = await client.get("/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("settings_overrides", [DEAD_VALKEY], indirect=True)
async def test_valkey_down_is_degraded(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    check_shape(body)
    assert body["status"] == "degraded"
    check_up(body["checks"]["postgres"])
    check_down(body["checks"]["valkey"])
    ready = await client.get("/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize("settings_overrides", [{**DEAD_POSTGRES, **DEAD_VALKEY}], indirect=True)
async def test_both_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    check_down(body["checks"]["postgres"])
    check_down(body["checks"]["valkey"])


async def test_ready_is_503_while_shutting_down(app: App, client: httpx.AsyncClient) -> None:
    app.ctx.shutting_down = True
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json() == error("service_unavailable", "Worker is shutting down", 503)
    assert int(ready.headers["Retry-After"]) >= 1
    live = await client.get("/health/live")
    assert live.status_code == 200
