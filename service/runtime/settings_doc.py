"""What each setting means, and the README's settings table rendered from Settings itself.

`python -m service settings-table` prints the table; tests/test_readme.py checks that the
README carries exactly this table, so code, docs and defaults cannot drift apart.
"""

from __future__ import annotations

import dataclasses

from service.config import Settings

DOCS: dict[str, str] = {
    "env": "development, test or production (production requires both URLs, no placeholders)",
    "host": "listen address (the container sets 0.0.0.0)",
    "port": "listen port",
    "workers": "Sanic worker processes; each has its own pool and aggregators",
    "log_level": "DEBUG, INFO (one JSON line per request), WARNING, ERROR, CRITICAL",
    "database_url": "PostgreSQL URL (`?host=/socket/dir` works); unset: embedded server",
    "valkey_url": "Valkey/Redis URL (redis://, valkey://); unset: embedded server",
    "data_dir": "where the embedded servers keep their files",
    "db_pool_min": "asyncpg pool minimum per worker",
    "db_pool_max": "asyncpg pool maximum per worker (pods x workers x this < max_connections)",
    "website_url": "base of share_url in build responses",
    "cors_origins": "comma-separated origins allowed by CORS",
    "max_body_bytes": "largest request body; larger is 413 payload_too_large",
    "request_timeout_s": "time to receive a whole request, line + headers + body (408), and "
    "to produce a response (503)",
    "max_connections_per_worker": "open connections per worker; more are answered 503 and closed",
    "graceful_shutdown_s": "Sanic drain on SIGTERM before the final flush",
    "final_flush_timeout_s": "budget of the aggregators' final flush on stop",
    "flush_interval_s": "how often each worker flushes buffered search events",
    "search_buffer_max_events": "analytics buffer cap per worker (events); full = 503",
    "search_buffer_max_bytes": "analytics buffer cap per worker (bytes); full = 503",
    "analytics_write_through": "one transaction per search event (the benchmark baseline)",
    "vote_batch_max": "largest group commit of votes",
    "vote_timeout_s": "longest a vote waits for its commit before 503",
    "tally_check_interval_s": "how often one worker per cluster recounts vote tallies and "
    "repairs drift (`reconcile-tallies`)",
    "popular_cache_ttl_s": "freshness bound of Valkey views (popular queries / builds), "
    "max 60; popular builds of a week, month, all time: x3, x10, x30",
    "rate_limit_enabled": "per-session and per-IP limits in Valkey (false: no limiter at all)",
    "rate_limit_build_create": "build creations per minute per session",
    "rate_limit_vote": "votes per minute per session",
    "rate_limit_feedback": "feedback posts per minute per session",
    "rate_limit_analytics": "searches recorded per minute per session",
    "rate_limit_read": "GET requests per minute per session",
    "rate_limit_edit": "build edits and deletes (PATCH/DELETE) per minute per session",
    "rate_limit_ip_multiplier": "per-IP limit = this x the per-session limit",
    "rate_limit_fail_open_retry_s": "while Valkey is down the limiter lets requests through; "
    "it asks Valkey again after this long",
    "trusted_proxies": "comma-separated CIDRs whose X-Forwarded-For is believed",
    "auth_jwks_url": "identity provider's JWKS (https in production); unset with "
    "AUTH_PUBLIC_KEY unset: the local development issuer (refused in production)",
    "auth_public_key": "one PEM public key (RSA, P-256 or Ed25519), or a path to a PEM file, "
    "instead of AUTH_JWKS_URL",
    "auth_issuer": "required `iss` of tokens (required with AUTH_JWKS_URL / AUTH_PUBLIC_KEY; "
    "local issuer: myashes-local)",
    "auth_audience": "required `aud` of tokens (required with AUTH_JWKS_URL / AUTH_PUBLIC_KEY; "
    "local issuer: myashes-api)",
    "auth_required_for_writes": "POST /builds needs a bearer token (401 authentication_required "
    "otherwise)",
    "auth_jwks_min_refetch_s": "an unknown `kid` refetches the JWKS at most this often per worker",
    "metrics_enabled": "serve /metrics and count requests",
    "health_check_interval_s": "each worker checks PostgreSQL and Valkey this often in the "
    "background; /health/ready and /metrics answer from the latest check",
    "schema_recheck_s": "while the database's applied migrations differ from the code's, "
    "each worker is not ready (API 503) and checks again this often",
    "bench_endpoints": "register /_bench/noop (benchmark ceiling)",
    "prometheus_multiproc_dir": "prometheus multiprocess dir; unset: a temp dir per server run",
}


def _default(field: dataclasses.Field[object]) -> str:
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return ", ".join(value) if value else "empty"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def settings_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for field in dataclasses.fields(Settings):
        lines.append(f"| `{field.name.upper()}` | `{_default(field)}` | {DOCS[field.name]} |")
    return "\n".join(lines) + "\n"
