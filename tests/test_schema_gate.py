"""Schema gate on real PostgreSQL: a database whose migrations do not match the code's
(missing, behind, or ahead with a migration this code does not know) makes the worker not
ready and its API answer 503 service_unavailable (never 500) until the migration is done;
development `python -m service run` migrates by itself, production never does.

Each test gets a database of its own (created and dropped here), so the suite's schema
stays as it is.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.app import create_app
from service.ctx import App
from service.runtime import db
from service.telemetry.schema import SchemaGate, compare, shipped_migrations
from tests.auth_keys import Key, provider_settings
from tests.conftest import Stores, make_settings
from tests.server import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = shipped_migrations(ROOT / "migrations" / "models")
FUTURE = "99_20991231000000_from_a_newer_release.py"
BUILD = {"name": "gate", "primary_archetype": "tank", "secondary_archetype": "bard", "race": "vek"}
RECHECK_S = 0.05


def with_database(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


async def execute(url: str, *statements: str, args: tuple[Any, ...] = ()) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        rows: list[asyncpg.Record] = []
        for sql in statements:
            rows = list(await conn.fetch(sql, *args))
        return rows
    finally:
        await conn.close()


@pytest.fixture
def fresh_database(stores: Stores) -> Iterator[str]:
    """A new, empty database beside the test database (dropped afterwards)."""
    base = db.credentials(stores.database_url)["database"]
    name = f"{base}_gate_{uuid.uuid4().hex[:8]}"
    asyncio.run(execute(stores.database_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(stores.database_url, name)
    finally:
        asyncio.run(execute(stores.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def cli_migrate(database_url: str, valkey_url: str) -> str:
    """`python -m service migrate` in its own process (what the Job / `make migrate` do)."""
    env = {**os.environ, "DATABASE_URL": database_url, "VALKEY_URL": valkey_url}
    done = subprocess.run(
        [sys.executable, "-m", "service", "migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


@asynccontextmanager
async def serving(
    stores: Stores, database_url: str
) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    app = create_app(make_settings(stores, database_url=database_url, schema_recheck_s=RECHECK_S))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield app, c


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def checks_done(app: App, n: int) -> None:
    """Until the worker's gate has completed `n` more checks."""
    target = app.ctx.schema.checks + n

    async def done() -> bool:
        return app.ctx.schema.checks >= target

    await until(done)


def assert_refused(response: httpx.Response, *phrases: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"  # ceil(SCHEMA_RECHECK_S)
    body = response.json()
    assert body["error"] == "service_unavailable"
    assert body["status"] == 503
    for phrase in phrases:
        assert phrase in body["message"], body["message"]


async def assert_not_serving(client: httpx.AsyncClient, *phrases: str) -> None:
    assert_refused(await client.get("/health/ready"), *phrases)
    # Every API route: 503 in the contract's error shape, never a 500 from a missing table.
    assert_refused(await client.post("/api/v1/builds", json=BUILD), *phrases)
    assert_refused(await client.get("/api/v1/builds?sort=rating"), *phrases)
    assert_refused(
        await client.post(
            "/api/v1/analytics/search",
            json={"query": "x", "search_mode": "quick", "result_count": 1},
        ),
        *phrases,
    )
    assert (await client.get("/health/live")).status_code == 200


async def assert_serving(app: App, client: httpx.AsyncClient) -> None:
    async def ready() -> bool:
        return (await client.get("/health/ready")).status_code == 200

    await until(ready)
    assert app.ctx.schema.state.status == "ok"
    created = await client.post("/api/v1/builds", json=BUILD)
    assert created.status_code == 201, created.text


def error_lines(err: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [x for x in lines if x["logger"] == "myashes.schema" and x["level"] == "ERROR"]


def test_the_code_ships_its_migrations_in_order() -> None:
    assert SHIPPED[0].startswith("0_")
    assert [int(v.split("_", 1)[0]) for v in SHIPPED] == list(range(len(SHIPPED)))
    assert compare(SHIPPED, list(SHIPPED)).ok
    assert compare(SHIPPED, None).status == "missing"
    assert compare(SHIPPED, []).status == "missing"
    assert compare(SHIPPED, list(SHIPPED[:-1])).pending == SHIPPED[-1:]
    diverged = compare(SHIPPED, [*SHIPPED[:-1], FUTURE])
    assert (diverged.status, diverged.unknown, diverged.pending) == (
        "unknown",
        (FUTURE,),
        SHIPPED[-1:],
    )


async def test_missing_schema_refuses_until_migrated(
    stores: Stores, fresh_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(stores, fresh_database) as (app, client):
        assert app.ctx.schema.state.status == "missing"
        await assert_not_serving(
            client, "Database schema missing", SHIPPED[-1], "migration job", "make migrate"
        )
        await checks_done(app, 5)  # rechecked every 50 ms, still missing...
        errors = error_lines(capsys.readouterr().err)
        # ... yet one ERROR line (per minute), naming cause and fix.
        assert len(errors) == 1, errors
        assert "Database schema missing" in errors[0]["msg"]
        assert "make migrate" in errors[0]["msg"]
        # The migration Job runs: the worker becomes ready by itself.
        await asyncio.to_thread(cli_migrate, fresh_database, stores.valkey_url)
        await assert_serving(app, client)
    assert "now matches" in capsys.readouterr().err


async def test_schema_behind_refuses_until_the_last_migration_runs(
    stores: Stores, fresh_database: str
) -> None:
    await asyncio.to_thread(cli_migrate, fresh_database, stores.valkey_url)
    # The database of the previous release: the newest migration not applied yet.
    (last,) = await execute(
        fresh_database,
        "DELETE FROM aerich WHERE version = $1 RETURNING version, app, content",
        args=(SHIPPED[-1],),
    )
    async with serving(stores, fresh_database) as (app, client):
        assert app.ctx.schema.state.status == "behind"
        await assert_not_serving(
            client, "behind this code", SHIPPED[-1], "migration job", "make migrate"
        )
        assert SHIPPED[0] not in (await client.get("/health/ready")).json()["message"]
        await execute(
            fresh_database,
            "INSERT INTO aerich (version, app, content) VALUES ($1, $2, $3)",
            args=tuple(last),
        )
        await assert_serving(app, client)


async def test_unknown_migration_refuses_until_it_is_gone(
    stores: Stores, fresh_database: str
) -> None:
    await asyncio.to_thread(cli_migrate, fresh_database, stores.valkey_url)
    # A newer release migrated this database; this (older) code does not know that step.
    await execute(
        fresh_database,
        "INSERT INTO aerich (version, app, content) VALUES ($1, 'models', '{}')",
        args=(FUTURE,),
    )
    async with serving(stores, fresh_database) as (app, client):
        assert app.ctx.schema.state.status == "unknown"
        await assert_not_serving(client, "ahead of this code", FUTURE, "aerich downgrade")
        await execute(fresh_database, "DELETE FROM aerich WHERE version = $1", args=(FUTURE,))
        await assert_serving(app, client)


async def test_a_matched_worker_never_checks_again(stores: Stores, fresh_database: str) -> None:
    """A release's migration Job runs while the previous release's pods keep serving."""
    await asyncio.to_thread(cli_migrate, fresh_database, stores.valkey_url)
    async with serving(stores, fresh_database) as (app, client):
        gate: SchemaGate = app.ctx.schema
        assert gate.ok
        assert gate.checks == 1
        await execute(
            fresh_database,
            "INSERT INTO aerich (version, app, content) VALUES ($1, 'models', '{}')",
            args=(FUTURE,),
        )
        for _ in range(3):
            assert (await client.get("/health/ready")).status_code == 200
        assert (await client.post("/api/v1/builds", json=BUILD)).status_code == 201
        assert gate.checks == 1


@pytest.mark.server
def test_production_server_never_migrates_and_waits_for_the_job(
    stores: Stores, fresh_database: str
) -> None:
    provider = provider_settings(auth_public_key=Key.new("gate", "EdDSA").public_pem())
    server = ServerProcess(
        fresh_database,
        stores.valkey_url,
        workers=2,
        ENV="production",
        SCHEMA_RECHECK_S="0.2",
        LOG_LEVEL="INFO",
        **{k.upper(): v for k, v in provider.items()},
    )
    server.start(ready_path="/health/live")
    try:
        server.wait_workers_ready(2)
        tables = asyncio.run(
            execute(fresh_database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        )
        assert tables[0][0] == 0, "production must never migrate on start"
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            for _ in range(4):  # both workers (connections land on either)
                ready = client.get("/health/ready", headers={"Connection": "close"})
                assert ready.status_code == 503
                assert "Database schema missing" in ready.json()["message"]
                refused = client.post("/api/v1/builds", json=BUILD, headers={"Connection": "close"})
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"] == "service_unavailable"
                assert refused.headers["Retry-After"] == "1"
            cli_migrate(fresh_database, stores.valkey_url)
            deadline = time.monotonic() + 20
            ready_answers = 0
            while ready_answers < 4:  # both workers noticed, each by itself
                assert time.monotonic() < deadline, server.log()
                status = client.get("/health/ready", headers={"Connection": "close"}).status_code
                ready_answers = ready_answers + 1 if status == 200 else 0
            created = client.post("/api/v1/builds", json=BUILD)
            assert created.status_code == 201, created.text
        server.terminate()
        assert server.wait(30) == 0
    finally:
        server.kill()
    log = server.log()
    errors = error_lines(log)
    assert 1 <= len(errors) <= 2, errors  # one per worker within the first minute
    assert all("make migrate" in e["msg"] for e in errors)
    assert "applying pending migrations" not in log
    assert '"status":500' not in log.replace(" ", "")


@pytest.mark.server
def test_development_server_migrates_a_given_database_itself(
    stores: Stores, fresh_database: str
) -> None:
    server = ServerProcess(fresh_database, stores.valkey_url, workers=1, LOG_LEVEL="INFO")
    server.start()  # ready: the schema was brought up to date before serving
    try:
        created = httpx.post(f"{server.base_url}/api/v1/builds", json=BUILD, timeout=10)
        assert created.status_code == 201, created.text
    finally:
        server.kill()
    log = server.log()
    assert "development: applying pending migrations" in log
    assert f"migrations applied: {', '.join(SHIPPED)}" in log
    versions = asyncio.run(execute(fresh_database, "SELECT version FROM aerich ORDER BY id"))
    assert tuple(r[0] for r in versions) == SHIPPED
