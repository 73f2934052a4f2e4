"""HTTP handlers: one blueprint per resource, the API ones grouped once under /api/v1."""

from __future__ import annotations

from sanic import Blueprint

from service.ctx import App
from service.handlers import (
    admin,
    admin_page,
    admin_queries,
    analytics,
    bench,
    builds,
    feedback,
    health,
    metrics,
    openapi,
    players,
    votes,
)


def register(app: App) -> None:
    api = Blueprint.group(
        players.blueprint(),  # before builds: /builds/auth/* are not build ids
        builds.blueprint(),
        votes.blueprint(),
        feedback.blueprint(),
        analytics.blueprint(),
        admin.blueprint(),
        admin_queries.blueprint(),
        url_prefix="/api/v1",
    )
    app.blueprint(api)
    app.blueprint(health.blueprint())
    app.blueprint(admin_page.blueprint())
    app.blueprint(openapi.blueprint())
    if app.ctx.settings.auth_local:
        app.blueprint(players.jwks_blueprint())
    if app.ctx.settings.metrics_enabled:
        app.blueprint(metrics.blueprint())
    if app.ctx.settings.bench_endpoints:
        app.blueprint(bench.blueprint())
