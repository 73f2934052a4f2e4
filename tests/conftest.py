"""Test fixtures: real PostgreSQL + Valkey (TEST_* URLs, else embedded), a fresh app per test."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from sanic import Sanic

from service.app import create_app
from service.config import Settings
from service.ctx import App
from service.runtime import db
from tests.apps import serving

Sanic.test_mode = True

ROOT = Path(__file__).resolve().parent.parent
TABLES = (
    "builds",
    "build_votes",
    "feedback",
    "feedback_rollups",
    "feedback_rollup_sessions",
    "feedback_daily",
    "feedback_queries",
    "search_zero_queries",
    "search_events",
    "search_rollups",
    "search_rollup_sessions",
    "search_rollup_sources",
    "hidden_queries",
    "flush_log",
)


@dataclass(frozen=True)
class Stores:
    database_url: str
    valkey_url: str


async def _reset_schema(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()
    await db.migrate(database_url)


@pytest.fixture(scope="session")
def stores() -> Iterator[Stores]:
    database_url = os.environ.get("TEST_DATABASE_URL") or None
    valkey_url = os.environ.get("TEST_VALKEY_URL") or None
    embedded = None
    if database_url is None or valkey_url is None:
        from service.runtime import embedded as embedded_servers

        embedded = embedded_servers.start(ROOT / ".data", database="myashes_test")
        database_url = database_url or embedded.database_url
        valkey_url = valkey_url or embedded.valkey_url
    asyncio.run(_reset_schema(database_url))
    try:
        yield Stores(database_url, valkey_url)
    finally:
        if embedded is not None:
            embedded.stop()


async def clean_stores(stores: Stores) -> None:
    conn = await asyncpg.connect(stores.database_url)
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    valkey = Redis.from_url(stores.valkey_url)
    try:
        await valkey.flushdb()
    finally:
        await valkey.aclose()


def make_settings(stores: Stores, **overrides: Any) -> Settings:
    base = Settings(
        env="test",
        database_url=stores.database_url,
        valkey_url=stores.valkey_url,
        rate_limit_enabled=False,
        # Tests flush explicitly (await aggregator.flush()); the loop stays out of the way.
        flush_interval_s=3600.0,
        db_pool_max=20,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Override in a test module or with @pytest.mark.parametrize(indirect=True)."""
    return dict(getattr(request, "param", {}))


@pytest.fixture
async def app(stores: Stores, settings_overrides: dict[str, Any]) -> AsyncIterator[App]:
    await clean_stores(stores)
    application = create_app(make_settings(stores, **settings_overrides))
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


@pytest.fixture
async def client(app: App) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def sql(stores: Stores) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection for asserting exact rows."""
    conn = await asyncpg.connect(stores.database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def valkey(stores: Stores) -> AsyncIterator[Redis]:
    client = Redis.from_url(stores.valkey_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def failing_client(stores: Stores) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app with one extra test-only route that raises (an unexpected 500)."""
    application = create_app(make_settings(stores))

    async def boom(request: Any) -> None:
        raise RuntimeError("secret internals: /srv/app/service/builds.py line 42")

    application.add_route(boom, "/test/boom", methods=["GET", "POST"])
    async with serving(application) as client:
        yield client
