"""Per-worker resources: Tortoise -> Valkey -> aggregators, closed in reverse order."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from redis.asyncio import Redis

from aggregators.popular import PopularQueries
from aggregators.search import SearchAggregator
from aggregators.tallies import PeriodicTallyCheck
from aggregators.votes import VOTES_PER_NETWORK, VoteAggregator
from service.builds import popular as popular_builds
from service.config import SettingsError
from service.ctx import App, Ctx
from service.insights import views as insights_views
from service.runtime import db, supervisor
from service.telemetry import metrics
from service.telemetry.dependencies import DependencyMonitor
from service.telemetry.schema import SchemaGate
from service.telemetry.worker_metrics import WorkerMetrics, log_worker_stopped

log = logging.getLogger("myashes.resources")
STOP_POLL_S = 0.01


def _valkey_client(url: str) -> Redis:
    # Short timeouts: a dead Valkey must degrade reads, never stall a request.
    return Redis.from_url(
        url,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry_on_timeout=False,
        health_check_interval=30,
        max_connections=64,
    )


async def open_resources(app: App) -> None:
    ctx = app.ctx
    settings = ctx.settings
    if settings.database_url is None or settings.valkey_url is None:
        raise SettingsError(
            "DATABASE_URL/VALKEY_URL: unset; start with `python -m service run` "
            "(embedded servers) or set both"
        )
    stack = ctx.stack
    # Pushed first, so it runs last: after the final flush (metrics, summary line).
    stack.callback(_worker_stopped, ctx)
    ctx.db = await db.open_orm(
        settings.database_url, pool_min=settings.db_pool_min, pool_max=settings.db_pool_max
    )
    stack.push_async_callback(db.close_orm)
    ctx.valkey = _valkey_client(settings.valkey_url)
    stack.push_async_callback(ctx.valkey.aclose)
    # Readiness and /metrics read these results; the first round completes before serving.
    ctx.dependencies = DependencyMonitor(
        {"postgres": lambda: _select_1(ctx), "valkey": lambda: _ping(ctx)},
        interval_s=settings.health_check_interval_s,
    )
    await ctx.dependencies.check()
    ctx.dependencies.start()
    stack.push_async_callback(ctx.dependencies.stop)
    # Applied migrations vs the shipped ones: not ready and API 503 until they match.
    ctx.schema = SchemaGate(
        ctx.db, Path(db.MIGRATIONS_DIR) / "models", recheck_s=settings.schema_recheck_s
    )
    await ctx.schema.check()
    ctx.schema.start()
    stack.push_async_callback(ctx.schema.stop)
    ctx.search = SearchAggregator(
        ctx.db,
        interval_s=settings.flush_interval_s,
        max_events=settings.search_buffer_max_events,
        max_bytes=settings.search_buffer_max_bytes,
    )
    ctx.votes = VoteAggregator(
        ctx.db,
        ctx.valkey,
        max_batch=settings.vote_batch_max,
        # A rate limit of the contract: off with the others (RATE_LIMIT_ENABLED=false).
        votes_per_network=VOTES_PER_NETWORK if settings.rate_limit_enabled else None,
    )
    ctx.popular = PopularQueries(ctx.db, ctx.valkey, fresh_s=settings.popular_cache_ttl_s)
    ctx.popular_builds = popular_builds.make_view(ctx.valkey, settings.popular_cache_ttl_s)
    ctx.content_gaps = insights_views.make_view(ctx.valkey, settings.popular_cache_ttl_s)
    ctx.feedback_patterns = insights_views.make_patterns_view(
        ctx.valkey, settings.popular_cache_ttl_s
    )
    views = (ctx.popular.view, ctx.popular_builds, ctx.content_gaps, ctx.feedback_patterns)
    for view in views:
        stack.push_async_callback(view.close)
    for aggregator in (ctx.search, ctx.votes):
        aggregator.start()
        # Final flush on stop, before the stores close (the stack unwinds in reverse).
        stack.push_async_callback(aggregator.stop, settings.final_flush_timeout_s)
    # Recounts off the request path; one worker per cluster runs each check (Valkey lease).
    ctx.tally_check = tally_check = PeriodicTallyCheck(
        ctx.db,
        ctx.valkey,
        interval_s=settings.tally_check_interval_s,
        on_report=lambda report: metrics.tally_check(report.drift),
    )
    tally_check.start()
    stack.push_async_callback(tally_check.stop)
    if settings.metrics_enabled:
        # Its exporter is stopped first at unwind; its final counts go in at _worker_stopped.
        ctx.metrics = WorkerMetrics(ctx.db, (ctx.search, ctx.votes))
        ctx.metrics.start()
        stack.push_async_callback(ctx.metrics.stop)
    log.info("worker resources open")


async def _select_1(ctx: Ctx) -> None:
    await ctx.db.execute_query("SELECT 1")


async def _ping(ctx: Ctx) -> None:
    await ctx.valkey.ping()


def _worker_stopped(ctx: Ctx) -> None:
    """Last step of a worker's stop, after the final flush: final counts, one summary line."""
    if ctx.metrics is not None:
        ctx.metrics.close()
    aggregators = (getattr(ctx, "search", None), getattr(ctx, "votes", None))
    log_worker_stopped([a for a in aggregators if a is not None])


async def mark_shutting_down(app: App) -> None:
    app.ctx.shutting_down = True


async def close_resources(app: App) -> None:
    await app.ctx.stack.aclose()
    log.info("worker resources closed")


def _stop_once(app: App) -> None:
    """First SIGINT/SIGTERM starts the graceful stop; later ones never reach the worker.

    Ctrl-C, systemd and `kill -- -PGID` signal the whole process group, and the main process
    then signals each worker again: Sanic's own handler would stop the loop a second time,
    in the middle of the final flush, and lose the buffered events.
    """
    supervisor.ignore_stop_signals()
    if app.ctx.stop_requested:
        log.info("stop already in progress: signal ignored so the final flush can finish")
        return
    app.ctx.stop_requested = True
    app.ctx.shutting_down = True
    _stop_when_serving(app)


def _stop_when_serving(app: App) -> None:
    if not app.state.is_running:  # still in its start-up events: stop once the loop runs
        asyncio.get_running_loop().call_later(STOP_POLL_S, _stop_when_serving, app)
        return
    app.stop(terminate=False)


def register(app: App) -> None:
    if supervisor.in_server_worker():
        supervisor.install_worker(app, _stop_once)
    app.before_server_start(open_resources)
    app.before_server_stop(mark_shutting_down)
    app.after_server_stop(close_resources)
