"""Settings: the one place that reads the environment (frozen, validated, secrets masked)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints
from urllib.parse import unquote, urlsplit

DEFAULT_CORS_ORIGINS = (
    "https://myashes.ai",
    "https://www.myashes.ai",
    "http://localhost:3000",
    "http://localhost:8080",
    "http://127.0.0.1:8080",
)
ENVIRONMENTS = ("development", "test", "production")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Passwords that must never reach production (Settings refuses them when ENV=production).
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "password",
        "postgres",
        "secret",
        "example",
        "placeholder",
        "replace-me",
        "todo",
        "xxx",
    }
)


class SettingsError(ValueError):
    """A setting has a bad value; the message names the environment variable."""


def _env_name(name: str) -> str:
    return name.upper()


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Runtime configuration. Field `x` is read from the environment variable `X`."""

    env: str = "development"
    host: str = "127.0.0.1"
    port: int = field(default=8000, metadata={"min": 1, "max": 65535})
    workers: int = field(default=1, metadata={"min": 1, "max": 64})
    log_level: str = "INFO"
    # Unset DATABASE_URL / VALKEY_URL = embedded servers under DATA_DIR (development only).
    database_url: str | None = None
    valkey_url: str | None = None
    data_dir: str = ".data"
    db_pool_min: int = field(default=1, metadata={"min": 0})
    db_pool_max: int = field(default=10, metadata={"min": 1})
    website_url: str = "https://myashes.ai"
    cors_origins: tuple[str, ...] = DEFAULT_CORS_ORIGINS
    # Request limits.
    max_body_bytes: int = field(default=64 * 1024, metadata={"min": 1024})
    request_timeout_s: float = field(default=30.0, metadata={"min": 0.1})
    # Open connections one worker accepts (keep-alive ones included); more get 503 and close.
    max_connections_per_worker: int = field(default=1000, metadata={"min": 1})
    # Shutdown budget: Sanic drains requests for GRACEFUL_SHUTDOWN_S, then the final
    # aggregator flush gets FINAL_FLUSH_TIMEOUT_S (k8s terminationGracePeriod covers both).
    graceful_shutdown_s: float = field(default=10.0, metadata={"min": 0.0})
    final_flush_timeout_s: float = field(default=10.0, metadata={"min": 0.1})
    # Aggregators.
    flush_interval_s: float = field(default=1.0, metadata={"min": 0.01})
    search_buffer_max_events: int = field(default=100_000, metadata={"min": 1})
    search_buffer_max_bytes: int = field(default=64 * 1024 * 1024, metadata={"min": 1024})
    analytics_write_through: bool = False
    vote_batch_max: int = field(default=500, metadata={"min": 1})
    vote_timeout_s: float = field(default=5.0, metadata={"min": 0.1})
    # One worker per cluster (Valkey lease) recounts every build's tallies from build_votes
    # this often, reports drift (myashes_tally_drift) and repairs it.
    tally_check_interval_s: float = field(default=3600.0, metadata={"min": 1.0})
    popular_cache_ttl_s: int = field(default=60, metadata={"min": 1, "max": 60})
    # Rate limits (per session per minute; per client IP at RATE_LIMIT_IP_MULTIPLIER x).
    rate_limit_enabled: bool = True
    rate_limit_build_create: int = field(default=10, metadata={"min": 1})
    rate_limit_vote: int = field(default=30, metadata={"min": 1})
    rate_limit_feedback: int = field(default=20, metadata={"min": 1})
    rate_limit_analytics: int = field(default=60, metadata={"min": 1})
    rate_limit_read: int = field(default=120, metadata={"min": 1})
    rate_limit_edit: int = field(default=30, metadata={"min": 1})
    rate_limit_ip_multiplier: int = field(default=5, metadata={"min": 1})
    # Valkey down: limits fail open; a worker asks Valkey again after this many seconds.
    rate_limit_fail_open_retry_s: float = field(default=2.0, metadata={"min": 0.0})
    trusted_proxies: tuple[str, ...] = ()
    # Players (bearer tokens, service/auth). Keys: the identity provider's JWKS or one public
    # key; with neither, the local development issuer (key under DATA_DIR, refused in
    # production). Issuer and audience are required with the provider's keys.
    auth_jwks_url: str | None = None
    auth_public_key: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_required_for_writes: bool = False
    # An unknown `kid` refetches the JWKS at most once per this many seconds (per worker).
    auth_jwks_min_refetch_s: float = field(default=5.0, metadata={"min": 0.0, "max": 300.0})
    # Observability.
    metrics_enabled: bool = True
    # Monitoring: each worker checks PostgreSQL and Valkey this often in the background;
    # /health/ready and /metrics answer from the latest result.
    health_check_interval_s: float = field(default=2.0, metadata={"min": 0.05, "max": 60.0})
    # Schema gate: while the database's migrations do not match the code's, each worker
    # checks again this often (not ready, API 503 meanwhile); once matched, never again.
    schema_recheck_s: float = field(default=5.0, metadata={"min": 0.05, "max": 300.0})
    # Registers /_bench/noop (GET and POST): the no-op ceiling benchmarks compare against.
    bench_endpoints: bool = False
    prometheus_multiproc_dir: str | None = None

    def __post_init__(self) -> None:
        _check_choice("ENV", self.env, ENVIRONMENTS)
        _check_choice("LOG_LEVEL", self.log_level, LOG_LEVELS)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            lo, hi = f.metadata.get("min"), f.metadata.get("max")
            if lo is not None and value < lo:
                raise SettingsError(f"{_env_name(f.name)}: must be >= {lo}, got {value!r}")
            if hi is not None and value > hi:
                raise SettingsError(f"{_env_name(f.name)}: must be <= {hi}, got {value!r}")
        if self.db_pool_min > self.db_pool_max:
            raise SettingsError("DB_POOL_MIN: must be <= DB_POOL_MAX")
        for name in ("database_url", "valkey_url"):
            url = getattr(self, name)
            if url is not None:
                _check_url(_env_name(name), url)
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise SettingsError(f"TRUSTED_PROXIES: {cidr!r} is not an IP network") from None
        if self.env == "production":
            self._check_production()
        self._check_auth()

    def _check_auth(self) -> None:
        if self.auth_jwks_url is not None and self.auth_public_key is not None:
            raise SettingsError("AUTH_PUBLIC_KEY: set AUTH_JWKS_URL or AUTH_PUBLIC_KEY, not both")
        if self.auth_jwks_url is not None:
            scheme = urlsplit(self.auth_jwks_url).scheme
            allowed = ("https",) if self.env == "production" else ("http", "https")
            if scheme not in allowed:
                raise SettingsError(f"AUTH_JWKS_URL: scheme must be {' or '.join(allowed)}")
        if self.auth_local:
            if self.env == "production":
                raise SettingsError(
                    "AUTH_JWKS_URL: required when ENV=production (or AUTH_PUBLIC_KEY): "
                    "the local development issuer is refused"
                )
            return
        for name in ("auth_issuer", "auth_audience"):
            if getattr(self, name) is None:
                raise SettingsError(
                    f"{_env_name(name)}: required with AUTH_JWKS_URL or AUTH_PUBLIC_KEY"
                )

    def _check_production(self) -> None:
        for name in ("database_url", "valkey_url"):
            url = getattr(self, name)
            if url is None:
                raise SettingsError(
                    f"{_env_name(name)}: required when ENV=production (no embedded servers)"
                )
            password = urlsplit(url).password
            if password is not None and is_placeholder(password):
                raise SettingsError(
                    f"{_env_name(name)}: placeholder password refused in production"
                )

    @property
    def embedded(self) -> bool:
        """True when either store must be started locally (development default)."""
        return self.database_url is None or self.valkey_url is None

    @property
    def auth_local(self) -> bool:
        """True when tokens come from the local development issuer (no provider keys set)."""
        return self.auth_jwks_url is None and self.auth_public_key is None

    def with_stores(self, database_url: str, valkey_url: str) -> Settings:
        return dataclasses.replace(self, database_url=database_url, valkey_url=valkey_url)

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_url") and isinstance(value, str):
                value = mask_url(value)
            parts.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(parts)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build Settings from `environ` (default os.environ); unset variables keep defaults."""
        environ = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(_env_name(f.name))
            if raw is None:
                continue
            values[f.name] = _parse(_env_name(f.name), raw, hints[f.name])
        return cls(**values)


# An unrendered template value: <password>, ${DB_PASSWORD}, {{ .password }}, $PASSWORD.
_TEMPLATE = re.compile(r"<[^>]*>|\$\{[^}]*\}|\{\{.*\}\}|\$[A-Za-z_]+", re.S)


def is_placeholder(password: str) -> bool:
    """A password that only looks like one: a known placeholder (also with digits or symbols
    appended, "changeme123"), an unrendered template, or one character repeated."""
    value = unquote(password).strip()
    bare = value.lower().rstrip("0123456789!?.#*_-")
    return (
        value.lower() in PLACEHOLDER_SECRETS
        or bare in PLACEHOLDER_SECRETS
        or _TEMPLATE.fullmatch(value) is not None
        or len(set(value)) == 1
    )


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _check_choice(var: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(f"{var}: must be one of {', '.join(choices)}, got {value!r}")


def _check_url(var: str, url: str) -> None:
    schemes = {
        "DATABASE_URL": ("postgres", "postgresql"),
        "VALKEY_URL": ("redis", "rediss", "valkey", "valkeys", "unix"),
    }[var]
    if urlsplit(url).scheme not in schemes:
        raise SettingsError(f"{var}: scheme must be one of {', '.join(schemes)}")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(var: str, raw: str, hint: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):  # `X | None`: empty string means None
        if raw.strip() == "":
            return None
        (hint,) = [a for a in get_args(hint) if a is not type(None)]
        origin = get_origin(hint)
    value = raw.strip()
    if hint is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise SettingsError(f"{var}: expected true/false, got {raw!r}")
    if hint is int:
        if not re.fullmatch(r"[+-]?\d+", value):
            raise SettingsError(f"{var}: expected an integer, got {raw!r}")
        return int(value)
    if hint is float:
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{var}: expected a number, got {raw!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise SettingsError(f"{var}: expected a finite number, got {raw!r}")
        return number
    if origin is tuple:
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if value == "":
        raise SettingsError(f"{var}: must not be empty")
    return value
