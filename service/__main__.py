"""Command line: `python -m service run|migrate|seed-templates|reconcile-tallies|makemigration|
token`."""

from __future__ import annotations

import sys

from service.runtime import supervisor  # standard library only: imports in a few ms

if __name__ == "__main__" and sys.argv[1:2] == ["run"]:
    # From the first instruction on (the imports below take ~0.5 s): a stop signal is
    # recorded and the server then never starts, instead of a half-started process dying.
    supervisor.hold_stop_signals()

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from service.config import Settings, SettingsError
from service.runtime import db
from service.telemetry.logs import setup_logging
from service.telemetry.metrics_dir import metrics_dir

log = logging.getLogger("myashes")


@contextmanager
def stores(settings: Settings) -> Iterator[Settings]:
    """Settings with both store URLs: given ones, or embedded servers started for the block."""
    if not settings.embedded:
        yield settings
        return
    if settings.env == "production":  # Settings refuses this already; belt and braces
        raise SettingsError("DATABASE_URL/VALKEY_URL: required in production")
    from service.runtime import embedded

    servers = embedded.start(settings.data_dir)
    try:
        # Workers are separate processes that read the environment: hand them the URLs.
        database_url = settings.database_url or servers.database_url
        valkey_url = settings.valkey_url or servers.valkey_url
        os.environ["DATABASE_URL"] = database_url
        os.environ["VALKEY_URL"] = valkey_url
        yield settings.with_stores(database_url, valkey_url)
    finally:
        log.info("stopping embedded servers")
        servers.stop()


def describe(settings: Settings) -> str:
    """host:port/database of the store, for logs (never credentials)."""
    assert settings.database_url is not None
    creds = db.credentials(settings.database_url)
    return f"{creds['host']}:{creds['port']}/{creds['database']}"


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    supervisor.hold_stop_signals()  # until Sanic serves (again: main() may be called directly)
    with stores(settings) as ready, metrics_dir(settings):
        # Imported once PROMETHEUS_MULTIPROC_DIR is set (prometheus_client reads it at import).
        from service.app import create_app

        assert ready.database_url is not None
        if supervisor.stop_requested():
            pass
        elif settings.embedded or args.migrate:
            asyncio.run(db.prepare(ready.database_url))
        elif settings.env == "development":
            # A database given by URL in development: bring its schema up to this code's.
            # Production never does (the migration Job does; pods wait, not ready, until then).
            log.info("development: applying pending migrations to %s", describe(ready))
            asyncio.run(db.prepare(ready.database_url, templates=False))
        signum = supervisor.stop_requested()
        if signum is not None:
            log.info("%s before serving: not starting the server", signal.Signals(signum).name)
            return
        # Orderly stop whoever gets the signal (see its docstring); the main process waits
        # for its workers' drain and final flush, and a margin for closing the stores.
        supervisor.install(settings.graceful_shutdown_s + settings.final_flush_timeout_s + 10)
        loader = AppLoader(factory=create_app)
        app = loader.load()
        from service.http.protocol import BoundedHttpProtocol

        app.prepare(
            host=ready.host,
            port=ready.port,
            workers=ready.workers,
            single_process=False,
            protocol=BoundedHttpProtocol,
        )
        Sanic.serve(primary=app, app_loader=loader)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    with stores(settings) as ready:
        assert ready.database_url is not None
        asyncio.run(db.prepare(ready.database_url, templates=False))


def cmd_seed(settings: Settings, args: argparse.Namespace) -> None:
    with stores(settings) as ready:
        assert ready.database_url is not None
        asyncio.run(db.prepare(ready.database_url, migrations=False))


def cmd_reconcile_tallies(settings: Settings, args: argparse.Namespace) -> int:
    """Recount every build's rating_sum/vote_count from build_votes; report (one log line) and
    repair drift, or with --check only report it. Exit 1 when --check found drift."""
    from redis.asyncio import Redis

    from aggregators.tallies import reconcile

    async def run(database_url: str, valkey_url: str) -> int:
        client = await db.open_orm(database_url, pool_min=1, pool_max=2)
        valkey = Redis.from_url(valkey_url, socket_timeout=5.0, socket_connect_timeout=5.0)
        try:
            report = await reconcile(client, valkey, repair=not args.check)
        finally:
            await valkey.aclose()
            await db.close_orm()
        (log.error if report.drift else log.info)(report.line())
        return 1 if args.check and report.drift else 0

    with stores(settings) as ready:
        assert ready.database_url is not None
        assert ready.valkey_url is not None
        return asyncio.run(run(ready.database_url, ready.valkey_url))


def cmd_makemigration(settings: Settings, args: argparse.Namespace) -> None:
    from aerich import Command

    async def make(database_url: str) -> None:
        command = Command(
            db.tortoise_config(database_url), app="models", location=db.MIGRATIONS_DIR
        )
        async with command:
            await command.init()
            await command.upgrade()
            print(await command.migrate(args.name, no_input=True))

    with stores(settings) as ready:
        assert ready.database_url is not None
        asyncio.run(make(ready.database_url))


def cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    """Print a token of the local development issuer (what `make run` accepts)."""
    from service.auth.local_issuer import LocalIssuer

    if not settings.auth_local:
        raise SettingsError(
            "AUTH_JWKS_URL/AUTH_PUBLIC_KEY: set, so tokens come from that identity provider; "
            "`token` signs with the local development issuer only"
        )
    issuer = LocalIssuer.of(settings)
    print(issuer.mint(args.sub, args.name, args.role, args.ttl))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve (embedded PostgreSQL/Valkey when URLs are unset)")
    run.add_argument("--migrate", action="store_true", help="apply migrations + seed first")
    sub.add_parser("migrate", help="apply pending aerich migrations")
    sub.add_parser("seed-templates", help="insert/refresh the 12 official templates")
    sub.add_parser("settings-table", help="print the README's settings table")
    reconcile = sub.add_parser(
        "reconcile-tallies",
        help="recount vote tallies from build_votes, report and repair drift",
    )
    reconcile.add_argument(
        "--check", action="store_true", help="report only; exit 1 when any build drifted"
    )
    make = sub.add_parser("makemigration", help="generate a migration from model changes")
    make.add_argument("name")
    token = sub.add_parser("token", help="print a token of the local development issuer")
    # Defaults: `python -m service token --role admin` is enough to open /admin locally.
    token.add_argument(
        "--sub", default="local:developer", help="player id, e.g. steam:76561198000000000"
    )
    token.add_argument("--name", default="Developer", help="display name")
    token.add_argument("--role", action="append", default=[], help="a role (repeat): admin")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    args = parser.parse_args(argv)
    if args.command == "settings-table":  # documentation only: needs no valid environment
        from service.runtime.settings_doc import settings_table

        print(settings_table(), end="")
        return 0
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    commands = {
        "run": cmd_run,
        "migrate": cmd_migrate,
        "seed-templates": cmd_seed,
        "makemigration": cmd_makemigration,
        "token": cmd_token,
        "reconcile-tallies": cmd_reconcile_tallies,
    }
    try:
        status = commands[args.command](settings, args)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
