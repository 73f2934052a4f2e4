"""create_app(): the Sanic application factory (no module-level app, no I/O at import)."""

from __future__ import annotations

from typing import Any

from sanic import Sanic
from sanic_ext import Extend

from service import __version__, resources
from service.auth import middleware as auth
from service.config import Settings
from service.ctx import ApiRequest, App, Ctx
from service.handlers import register as register_handlers
from service.handlers.openapi import SWAGGER_UI_URL, SWAGGER_UI_VERSION
from service.http import errors, observe, ratelimit, schema_gate, sessions, validation
from service.telemetry.logs import setup_logging

EXPOSED_HEADERS = (
    "X-Session-ID",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-Request-ID",
    "WWW-Authenticate",
)

API_DESCRIPTION = (
    "Builds, votes, feedback and search analytics for MyAshes.ai. Every response carries "
    "the session in use in X-Session-ID; every error has the shape {error, message, status"
    "[, details]}. Rate-limited routes report X-RateLimit-Limit/Remaining/Reset and answer "
    "429 rate_limited with Retry-After when over a limit."
)


def _configure(app: App, settings: Settings) -> None:
    app.config.update(
        REQUEST_MAX_SIZE=settings.max_body_bytes,
        REQUEST_TIMEOUT=settings.request_timeout_s,
        RESPONSE_TIMEOUT=settings.request_timeout_s,
        GRACEFUL_SHUTDOWN_TIMEOUT=settings.graceful_shutdown_s,
        REQUEST_MAX_HEADER_SIZE=8192,
        KEEP_ALIVE_TIMEOUT=75,
        FALLBACK_ERROR_FORMAT="json",
        ACCESS_LOG=False,
        MOTD=False,
        # CORS (sanic-ext): exactly the contract's origins, methods and headers.
        CORS_ORIGINS=",".join(settings.cors_origins),
        CORS_METHODS="GET,POST,PATCH,DELETE,OPTIONS",
        CORS_ALLOW_HEADERS="X-Session-ID,Content-Type,Authorization",
        CORS_EXPOSE_HEADERS=",".join(EXPOSED_HEADERS),
        CORS_SUPPORTS_CREDENTIALS=False,
        CORS_MAX_AGE=600,
        CORS_AUTOMATIC_OPTIONS=True,
        # OpenAPI (sanic-ext): on in production too.
        # sanic-ext reads the document's info from API_* (OAS_* only configures the UI).
        API_TITLE="MyAshes community backend",
        API_VERSION=__version__,
        API_DESCRIPTION=API_DESCRIPTION,
        OAS_URL_PREFIX="/docs",
        OAS_URI_TO_JSON="/openapi.json",
        OAS_UI_DEFAULT="swagger",
        # Swagger UI from the pinned swagger-ui-bundle package (service.handlers.openapi),
        # never a CDN; ReDoc would load its script from a CDN: off.
        OAS_UI_SWAGGER_CDN_URL=SWAGGER_UI_URL,
        OAS_UI_SWAGGER_VERSION=SWAGGER_UI_VERSION,
        OAS_UI_REDOC=False,
        OAS_AUTODOC=False,
    )
    # REQUEST_MAX_SIZE holds in Sanic's server only; this enforces it under ASGI too.
    validation.register(app)


def create_app(settings: Settings | object | None = None) -> App:
    # `sanic service.app:create_app --factory` calls the factory with its CLI arguments.
    settings = settings if isinstance(settings, Settings) else Settings.from_env()
    request_class: Any = ApiRequest  # Sanic's stub wants Request[..., SimpleNamespace]
    app: App = Sanic("myashes", ctx=Ctx(settings), request_class=request_class)
    setup_logging(settings.log_level)  # after Sanic(): it configures its own loggers
    _configure(app, settings)
    Extend(app)
    errors.register(app)
    sessions.register(app)
    observe.register(app)
    schema_gate.register(app)
    auth.register(app)  # before the rate limits: they count a player by player id
    ratelimit.register(app)
    resources.register(app)
    register_handlers(app)
    return app
