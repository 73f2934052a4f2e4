"""Tortoise/aerich configuration built from a DATABASE_URL (unix-socket hosts included)."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tortoise import Tortoise, connections
from tortoise.backends.base.client import BaseDBAsyncClient

log = logging.getLogger("myashes.db")
MODEL_MODULES = ["models", "aerich.models"]
MIGRATIONS_DIR = "./migrations"
MIGRATION_LOCK_KEY = 0x6D79_6173_6865_73  # pg_advisory_lock key of `migrate` ("myashes")


def credentials(database_url: str) -> dict[str, Any]:
    """asyncpg credentials from a postgres URL.

    Tortoise ignores `?host=/socket/dir` in a URL, so the URL is parsed here and the socket
    directory (embedded Postgres listens on a unix socket only) goes in as `host`.
    """
    parts = urlsplit(database_url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    host = query.pop("host", None) or parts.hostname or "127.0.0.1"
    return {
        "host": unquote(host),
        "port": int(query.pop("port", None) or parts.port or 5432),
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password) if parts.password else None,
        "database": unquote(parts.path.lstrip("/")) or "postgres",
    }


def tortoise_config(database_url: str, *, pool_min: int = 1, pool_max: int = 10) -> dict[str, Any]:
    creds = credentials(database_url)
    creds.update(
        minsize=pool_min,
        maxsize=pool_max,
        application_name="myashes-backend",
        # Fail fast when Postgres is down: health checks and flush retries must not hang.
        timeout=5,
        command_timeout=30,
        # Statements run on a pool; keep prepared statements per connection bounded.
        statement_cache_size=256,
    )
    return {
        "connections": {"default": {"engine": "tortoise.backends.asyncpg", "credentials": creds}},
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


async def open_orm(database_url: str, *, pool_min: int, pool_max: int) -> BaseDBAsyncClient:
    # Global fallback: Sanic handles requests in tasks that do not inherit the contextvar
    # set in before_server_start (the same mode Tortoise's own Sanic integration uses).
    await Tortoise.init(
        config=tortoise_config(database_url, pool_min=pool_min, pool_max=pool_max),
        _enable_global_fallback=True,
    )
    client: BaseDBAsyncClient = connections.get("default")
    return client


async def close_orm() -> None:
    await Tortoise.close_connections()


async def migrate(database_url: str) -> list[str]:
    """Apply pending aerich migrations; returns the versions applied."""
    import asyncpg
    from aerich import Command

    command = Command(
        tortoise_config=tortoise_config(database_url, pool_min=1, pool_max=2),
        app="models",
        location=MIGRATIONS_DIR,
    )
    # One migrator at a time per database: development servers started together, or a Job
    # retried while its previous pod still runs, wait here instead of racing on the schema.
    creds = credentials(database_url)
    lock = await asyncpg.connect(**creds, timeout=10)
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        async with command:
            await command.init()
            applied: list[str] = await command.upgrade(run_in_transaction=True)
    finally:
        await lock.close()  # ends the session: the advisory lock goes with it
    return applied


async def prepare(database_url: str, *, migrations: bool = True, templates: bool = True) -> None:
    """Apply pending migrations and/or (re)seed the official templates (both idempotent)."""
    if migrations:
        applied = await migrate(database_url)
        log.info("migrations applied: %s", ", ".join(applied) or "none pending")
    if templates:
        from service.builds.store import seed_templates  # builds imports the models: keep db light

        await open_orm(database_url, pool_min=1, pool_max=2)
        try:
            count = await seed_templates()
        finally:
            await close_orm()
        log.info("official templates seeded: %d", count)
