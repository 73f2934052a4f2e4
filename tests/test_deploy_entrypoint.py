"""The container entrypoint against a real PostgreSQL: bounded wait, migrations on request,
exec of the server, SIGTERM shutdown.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from service.config import Settings
from service.runtime import entrypoint
from tests.auth_keys import Key, provider_settings
from tests.conftest import Stores
from tests.deploy.manifests import ROOT, SETTINGS_ENV

ENTRYPOINT = [sys.executable, "-m", "service.runtime.entrypoint"]
# Production needs the identity provider's keys: one public key here (no network).
PROVIDER = {
    k.upper(): v
    for k, v in provider_settings(auth_public_key=Key.new("deploy", "EdDSA").public_pem()).items()
}


def clean_env(**overrides: str) -> dict[str, str]:
    """The parent environment without any Settings variable, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(url: str, name: str) -> str:
    return urlsplit(url)._replace(path=f"/{name}").geturl()


@pytest.fixture
def fresh_database(stores: Stores) -> Iterator[str]:
    """A new, empty database on the test server (dropped afterwards)."""
    name = f"myashes_deploy_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(stores.database_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(stores.database_url, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def run_entrypoint(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    done = subprocess.run(
        [*ENTRYPOINT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    return done, time.monotonic() - start


def test_entrypoint_gives_up_on_a_closed_port_within_its_bound() -> None:
    port = free_port()  # nothing listens there any more
    env = clean_env(DATABASE_URL=f"postgresql://postgres:pw@127.0.0.1:{port}/myashes")
    done, elapsed = run_entrypoint(["migrate", "--wait-timeout", "3"], env)
    assert done.returncode == entrypoint.EXIT_UNAVAILABLE, done.stderr
    assert elapsed < 3 + 5, f"took {elapsed:.1f}s for a 3 s bound"
    assert "attempt 2/" in done.stderr
    assert "retrying in" in done.stderr
    assert re.search(
        rf"giving up: PostgreSQL at 127\.0\.0\.1:{port}/myashes unreachable", done.stderr
    )
    assert "pw" not in done.stderr.replace("up to", ""), "no password in logs"


def test_entrypoint_stops_after_max_attempts() -> None:
    env = clean_env(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/myashes")
    done, elapsed = run_entrypoint(["run", "--max-attempts", "2", "--wait-timeout", "30"], env)
    assert done.returncode == entrypoint.EXIT_UNAVAILABLE, done.stderr
    assert "unreachable after 2 attempts" in done.stderr
    assert elapsed < 10


def test_entrypoint_fails_fast_on_an_unknown_database(stores: Stores) -> None:
    env = clean_env(DATABASE_URL=with_database(stores.database_url, "myashes_no_such_db"))
    done, elapsed = run_entrypoint(["migrate", "--wait-timeout", "30"], env)
    assert done.returncode == entrypoint.EXIT_CONFIG, done.stderr
    assert "does not exist" in done.stderr
    assert elapsed < 10


def test_entrypoint_needs_database_url() -> None:
    done, _ = run_entrypoint(["run"], clean_env())
    assert done.returncode == entrypoint.EXIT_CONFIG
    assert "DATABASE_URL is required" in done.stderr


def test_entrypoint_migrate_applies_migrations_and_seeds(
    stores: Stores, fresh_database: str
) -> None:
    # The Job's environment: production settings, both URLs (Settings insists on both).
    env = clean_env(
        ENV="production", DATABASE_URL=fresh_database, VALKEY_URL=stores.valkey_url, **PROVIDER
    )
    done, _ = run_entrypoint(["migrate", "--seed-templates"], env)
    assert done.returncode == 0, done.stderr
    assert "PostgreSQL at" in done.stderr
    assert "is ready" in done.stderr
    versions = {
        r["version"] for r in asyncio.run(_fetch(fresh_database, "SELECT version FROM aerich"))
    }
    files = {p.name for p in (ROOT / "migrations" / "models").glob("[0-9]*_*.py")}
    assert versions == files
    templates = asyncio.run(_fetch(fresh_database, "SELECT 1 FROM builds WHERE is_template"))
    assert len(templates) == 12
    again, _ = run_entrypoint(["migrate"], env)  # idempotent: a re-run Job is harmless
    assert again.returncode == 0, again.stderr
    assert "none pending" in again.stderr


def _wait_ready(
    url: str, proc: subprocess.Popen[str], timeout: float, log: Path, workers: int
) -> None:
    """/health/ready answers 200 and every worker has reported ready.

    (One ready worker already makes the probe pass; a SIGTERM while another worker is still
    booting makes Sanic's manager SIGKILL the process group, which is not what we test here.)
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited during start-up:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - http://
                if response.status == 200 and log.read_text().count("Worker ready") >= workers:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} not ready within {timeout}s:\n{log.read_text()}")


def test_entrypoint_run_migrates_execs_the_server_and_stops_on_sigterm(
    stores: Stores, fresh_database: str, tmp_path: Path
) -> None:
    port = free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999.db").write_bytes(b"stale")
    env = clean_env(
        ENV="production",
        DATABASE_URL=fresh_database,
        VALKEY_URL=stores.valkey_url,
        HOST="127.0.0.1",
        PORT=str(port),
        WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        PYTHONUNBUFFERED="1",  # as in the image: worker logs reach the file as they happen
        **PROVIDER,
    )
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*ENTRYPOINT, "run", "--migrate", "--wait-timeout", "10"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own group: cleanup below reaches the workers too
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/health/ready", proc, 30, log, workers=2)
        # exec'd: the entrypoint's pid now runs the server itself (it gets SIGTERM directly).
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:4] == [b"-m", b"service", b"run"], cmdline
        assert not (metrics_dir / "counter_999.db").exists(), "stale metrics files removed"
        assert asyncio.run(_fetch(fresh_database, "SELECT 1 FROM aerich")), "migrated first"
        health, _ = run_entrypoint(["healthcheck"], env, timeout=15)
        assert health.returncode == 0, health.stderr
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        settings = Settings()
        budget = settings.graceful_shutdown_s + settings.final_flush_timeout_s
        assert proc.wait(timeout=budget + 5) == 0
        assert time.monotonic() - start < budget
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text()
    assert "migrations applied" in text, text
    assert "Server Stopped" in text, text
    closed, _ = run_entrypoint(["healthcheck"], env, timeout=15)
    assert closed.returncode == entrypoint.EXIT_FAILED
