"""Container entrypoint: wait for PostgreSQL (bounded), migrate only when asked, exec the server.

    python -m service.runtime.entrypoint run [--migrate] [--seed-templates] [WAIT]
    python -m service.runtime.entrypoint migrate [--seed-templates] [WAIT]
    python -m service.runtime.entrypoint healthcheck
    WAIT: [--wait-timeout S] [--max-attempts N]  (bound on waiting for PostgreSQL)

`run` (the image's CMD) replaces this process with `python -m service run`, so the server is
PID 1 and receives SIGTERM itself. Pods never migrate: the k8s migration Job runs `migrate`
(aerich upgrade), so replicas do not race each other on schema changes.

Exit codes: 0 done, 1 migration/seed failed, 2 configuration error (bad setting, credentials
refused, database missing), 69 PostgreSQL still unreachable when the wait bound ran out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from service.config import Settings, SettingsError
from service.runtime import db
from service.telemetry.logs import setup_logging
from service.telemetry.metrics_dir import reset_metrics_dir

log = logging.getLogger("myashes.entrypoint")

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE
# Defaults sized for a pod start: k8s startupProbe must cover wait timeout + server boot.
DEFAULT_WAIT_TIMEOUT_S = 60.0
DEFAULT_MAX_ATTEMPTS = 30
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 5.0
CONNECT_TIMEOUT_S = 5.0
HEALTHCHECK_TIMEOUT_S = 3.0


class Unavailable(Exception):
    """PostgreSQL did not answer within the wait bound."""


@dataclass(frozen=True)
class WaitPolicy:
    """Bounded retries: stop at `max_attempts` or after `timeout_s`, whichever comes first."""

    timeout_s: float = DEFAULT_WAIT_TIMEOUT_S
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    initial_delay_s: float = BACKOFF_INITIAL_S
    max_delay_s: float = BACKOFF_MAX_S

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter (pods starting together do not retry in lockstep)."""
        base = min(self.initial_delay_s * 2.0 ** (attempt - 1), self.max_delay_s)
        return float(base * random.uniform(0.8, 1.0))


def describe(database_url: str) -> str:
    """host:port/database for logs; never the user or password."""
    from service.runtime.db import credentials

    creds = credentials(database_url)
    return f"{creds['host']}:{creds['port']}/{creds['database']}"


async def _ping(database_url: str, timeout_s: float) -> None:
    import asyncpg

    from service.runtime.db import credentials

    creds = credentials(database_url)
    conn = await asyncpg.connect(
        host=creds["host"],
        port=creds["port"],
        user=creds["user"],
        password=creds["password"],
        database=creds["database"],
        timeout=timeout_s,
    )
    try:
        await conn.fetchval("SELECT 1", timeout=timeout_s)
    finally:
        await conn.close(timeout=timeout_s)


def _fatal(exc: BaseException) -> bool:
    """Errors that waiting cannot fix: refused credentials, unknown database or role."""
    import asyncpg

    return isinstance(
        exc,
        asyncpg.InvalidPasswordError
        | asyncpg.InvalidAuthorizationSpecificationError
        | asyncpg.InvalidCatalogNameError,
    )


async def wait_for_postgres(database_url: str, policy: WaitPolicy) -> int:
    """Return the number of attempts it took; raise Unavailable or SettingsError."""
    target = describe(database_url)
    start = time.monotonic()
    deadline = start + policy.timeout_s
    log.info(
        "waiting for PostgreSQL at %s (up to %d attempts / %.1fs)",
        target,
        policy.max_attempts,
        policy.timeout_s,
    )
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        try:
            await _ping(database_url, max(0.1, min(CONNECT_TIMEOUT_S, remaining)))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}".strip()
            if _fatal(exc):
                raise SettingsError(
                    f"DATABASE_URL: PostgreSQL at {target} refused: {reason}"
                ) from exc
            remaining = deadline - time.monotonic()
            delay = min(policy.delay(attempt), max(remaining, 0.0))
            if attempt >= policy.max_attempts or remaining <= 0:
                raise Unavailable(
                    f"PostgreSQL at {target} unreachable after {attempt} attempts in "
                    f"{time.monotonic() - start:.1f}s (bound: {policy.max_attempts} attempts / "
                    f"{policy.timeout_s:.1f}s); last error: {reason}"
                ) from exc
            log.warning(
                "PostgreSQL at %s not ready (attempt %d/%d: %s); retrying in %.1fs, %.1fs left",
                target,
                attempt,
                policy.max_attempts,
                reason,
                delay,
                remaining,
            )
            await asyncio.sleep(delay)
            continue
        log.info(
            "PostgreSQL at %s is ready (attempt %d, %.1fs)",
            target,
            attempt,
            time.monotonic() - start,
        )
        return attempt


def healthcheck(settings: Settings) -> int:
    """GET /health/live on this container's port (Docker HEALTHCHECK; k8s uses its probes)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    url = f"http://{host}:{settings.port}/health/live"
    try:
        with urllib.request.urlopen(url, timeout=HEALTHCHECK_TIMEOUT_S) as response:
            status = int(response.status)
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0 if status == 200 else EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument(
        "--wait-timeout",
        type=float,
        default=DEFAULT_WAIT_TIMEOUT_S,
        metavar="S",
        help=f"give up waiting for PostgreSQL after S seconds (default {DEFAULT_WAIT_TIMEOUT_S:g})",
    )
    wait.add_argument(
        "--max-attempts",
        type=int,
        default=DEFAULT_MAX_ATTEMPTS,
        metavar="N",
        help=f"give up after N connection attempts (default {DEFAULT_MAX_ATTEMPTS})",
    )
    seed = argparse.ArgumentParser(add_help=False)
    seed.add_argument(
        "--seed-templates", action="store_true", help="insert/refresh the official templates"
    )
    parser = argparse.ArgumentParser(
        prog="python -m service.runtime.entrypoint", description=__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[wait, seed], help="wait, optionally migrate, exec server")
    run.add_argument("--migrate", action="store_true", help="apply migrations before serving")
    sub.add_parser("migrate", parents=[wait, seed], help="wait, apply migrations, exit")
    sub.add_parser("healthcheck", help="exit 0 when /health/live answers 200")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "healthcheck":
        return healthcheck(settings)
    setup_logging(settings.log_level)
    if args.wait_timeout <= 0 or args.max_attempts < 1:
        log.error("--wait-timeout must be > 0 and --max-attempts >= 1")
        return EXIT_CONFIG
    if settings.database_url is None:
        log.error(
            "configuration error: DATABASE_URL is required; the container never starts "
            "embedded servers (use `make run` for those)"
        )
        return EXIT_CONFIG
    policy = WaitPolicy(timeout_s=args.wait_timeout, max_attempts=args.max_attempts)
    migrate = args.command == "migrate" or bool(getattr(args, "migrate", False))
    try:
        asyncio.run(wait_for_postgres(settings.database_url, policy))
    except SettingsError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    except Unavailable as exc:
        log.error("giving up: %s", exc)
        return EXIT_UNAVAILABLE
    if migrate or args.seed_templates:
        try:
            asyncio.run(
                db.prepare(settings.database_url, migrations=migrate, templates=args.seed_templates)
            )
        except Exception:
            log.exception("migration failed")
            return EXIT_FAILED
    if args.command == "migrate":
        return 0
    reset_metrics_dir(settings.prometheus_multiproc_dir)
    log.info(
        "starting server on %s:%d with %d workers", settings.host, settings.port, settings.workers
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # exec: no wrapper process stays behind, the server gets the kubelet's SIGTERM directly.
    os.execv(sys.executable, [sys.executable, "-m", "service", "run"])  # noqa: S606
    return 0  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
