"""Typed per-worker application context and per-request context."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from types import SimpleNamespace
from typing import TYPE_CHECKING, TypeAlias

from sanic import Request, Sanic
from sanic.config import Config

from service.config import Settings
from service.contract.players import Player

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from tortoise.backends.base.client import BaseDBAsyncClient

    from aggregators.popular import PopularQueries
    from aggregators.search import SearchAggregator
    from aggregators.tallies import PeriodicTallyCheck
    from aggregators.views import CachedView
    from aggregators.votes import VoteAggregator
    from service.contract.insights import ContentGap, Pattern
    from service.telemetry.dependencies import DependencyMonitor
    from service.telemetry.schema import SchemaGate
    from service.telemetry.worker_metrics import WorkerMetrics


class Ctx:
    """What one worker owns. Stores are set by service.resources before serving."""

    db: BaseDBAsyncClient
    valkey: Redis
    search: SearchAggregator
    votes: VoteAggregator
    tally_check: PeriodicTallyCheck
    popular: PopularQueries
    popular_builds: CachedView[list[str]]  # ranked build ids (service.builds.popular)
    content_gaps: CachedView[list[ContentGap]]  # admin insights (service.insights.views)
    feedback_patterns: CachedView[list[Pattern]]
    dependencies: DependencyMonitor
    schema: SchemaGate

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.monotonic()
        self.shutting_down = False
        self.stop_requested = False  # a stop signal arrived (service.resources)
        self.stack = AsyncExitStack()
        self.metrics: WorkerMetrics | None = None  # set per worker when METRICS_ENABLED
        # Why this worker's rate limiter is not counting requests (Valkey unreachable: fail
        # open; Valkey errors: fail closed); None while it enforces. /health reads it.
        self.rate_limit_problem: str | None = None


class RequestCtx(SimpleNamespace):
    session_id: str | None = None
    session_sent: bool = False
    # Set by service.auth from a verified bearer token; None = anonymous.
    player: Player | None = None


App: TypeAlias = Sanic[Config, Ctx]


class ApiRequest(Request[App, RequestCtx]):
    @staticmethod
    def make_context() -> RequestCtx:
        return RequestCtx()
