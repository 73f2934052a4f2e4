"""Settings: read from the environment, a bad value names its variable, secrets masked."""

from __future__ import annotations

import dataclasses

import pytest

from service.config import DEFAULT_CORS_ORIGINS, Settings, SettingsError

PG = "postgresql://app:s3cr3t-Pa55@db.internal:5432/myashes"
VALKEY = "redis://:hunter2-Xy@cache.internal:6379/0"
# Production needs the identity provider's keys, issuer and audience (no local issuer).
PROD_AUTH = {
    "AUTH_JWKS_URL": "https://login.myashes.ai/.well-known/jwks.json",
    "AUTH_ISSUER": "https://login.myashes.ai",
    "AUTH_AUDIENCE": "myashes-backend",
}


def test_defaults_from_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert (settings.database_url, settings.valkey_url, settings.embedded) == (None, None, True)
    assert settings.website_url == "https://myashes.ai"
    assert settings.cors_origins == DEFAULT_CORS_ORIGINS
    assert settings.max_body_bytes == 64 * 1024
    assert settings.rate_limit_enabled is True
    assert (settings.rate_limit_build_create, settings.rate_limit_vote) == (10, 30)
    assert (settings.rate_limit_feedback, settings.rate_limit_analytics) == (20, 60)
    assert (settings.rate_limit_read, settings.rate_limit_ip_multiplier) == (120, 5)


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "ENV": "production",
            "HOST": "10.1.2.3",
            "PORT": " 9000 ",
            "WORKERS": "4",
            "DATABASE_URL": PG,
            "VALKEY_URL": VALKEY,
            "RATE_LIMIT_ENABLED": "false",
            "METRICS_ENABLED": "0",
            "ANALYTICS_WRITE_THROUGH": "Yes",
            "FLUSH_INTERVAL_S": "0.5",
            "CORS_ORIGINS": "https://a.example, https://b.example,,",
            "TRUSTED_PROXIES": "10.0.0.0/8,192.168.1.1",
            "LOG_LEVEL": "DEBUG",
            "PROMETHEUS_MULTIPROC_DIR": "",
            "UNRELATED": "ignored",
            **PROD_AUTH,
            "AUTH_REQUIRED_FOR_WRITES": "true",
            "AUTH_JWKS_MIN_REFETCH_S": "2.5",
        }
    )
    assert (settings.env, settings.host, settings.port, settings.workers) == (
        "production",
        "10.1.2.3",
        9000,
        4,
    )
    assert (settings.database_url, settings.valkey_url, settings.embedded) == (PG, VALKEY, False)
    assert (settings.rate_limit_enabled, settings.metrics_enabled) == (False, False)
    assert settings.analytics_write_through is True
    assert settings.flush_interval_s == 0.5
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.1")
    assert settings.log_level == "DEBUG"
    assert settings.prometheus_multiproc_dir is None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FLUSH_INTERVAL_S": "abc"}, "FLUSH_INTERVAL_S: expected a number, got 'abc'"),
        ({"FLUSH_INTERVAL_S": "nan"}, "FLUSH_INTERVAL_S: expected a finite number, got 'nan'"),
        ({"FLUSH_INTERVAL_S": "0"}, "FLUSH_INTERVAL_S: must be >= 0.01, got 0.0"),
        ({"PORT": "0"}, "PORT: must be >= 1, got 0"),
        ({"PORT": "65536"}, "PORT: must be <= 65535, got 65536"),
        ({"PORT": "80.5"}, "PORT: expected an integer, got '80.5'"),
        ({"PORT": ""}, "PORT: expected an integer, got ''"),
        ({"WORKERS": "0"}, "WORKERS: must be >= 1, got 0"),
        ({"RATE_LIMIT_ENABLED": "maybe"}, "RATE_LIMIT_ENABLED: expected true/false, got 'maybe'"),
        ({"RATE_LIMIT_VOTE": "0"}, "RATE_LIMIT_VOTE: must be >= 1, got 0"),
        ({"MAX_BODY_BYTES": "100"}, "MAX_BODY_BYTES: must be >= 1024, got 100"),
        ({"POPULAR_CACHE_TTL_S": "61"}, "POPULAR_CACHE_TTL_S: must be <= 60, got 61"),
        (
            {"DATABASE_URL": "mysql://root@db/x"},
            "DATABASE_URL: scheme must be one of postgres, postgresql",
        ),
        (
            {"VALKEY_URL": "http://cache:6379"},
            "VALKEY_URL: scheme must be one of redis, rediss, valkey, valkeys, unix",
        ),
        ({"ENV": "staging"}, "ENV: must be one of development, test, production, got 'staging'"),
        (
            {"LOG_LEVEL": "verbose"},
            "LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'verbose'",
        ),
        ({"TRUSTED_PROXIES": "10.0.0.0/8,proxy"}, "TRUSTED_PROXIES: 'proxy' is not an IP network"),
        ({"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}, "DB_POOL_MIN: must be <= DB_POOL_MAX"),
        ({"HOST": "  "}, "HOST: must not be empty"),
    ],
)
def test_bad_value_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    assert str(caught.value) == message


def test_repr_masks_passwords() -> None:
    settings = Settings(database_url=PG, valkey_url=VALKEY)
    for text in (repr(settings), str(settings), f"{settings}"):
        assert "s3cr3t-Pa55" not in text
        assert "hunter2-Xy" not in text
        assert "postgresql://app:***@db.internal:5432/myashes" in text
        assert "redis://:***@cache.internal:6379/0" in text


def test_repr_keeps_urls_without_password() -> None:
    settings = Settings(database_url="postgresql://postgres@127.0.0.1:5432/x")
    assert "database_url='postgresql://postgres@127.0.0.1:5432/x'" in repr(settings)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "DATABASE_URL: required when ENV=production (no embedded servers)"),
        ({"DATABASE_URL": PG}, "VALKEY_URL: required when ENV=production (no embedded servers)"),
        (
            {"DATABASE_URL": "postgresql://app:changeme@db/x", "VALKEY_URL": VALKEY},
            "DATABASE_URL: placeholder password refused in production",
        ),
        (
            {"DATABASE_URL": "postgresql://postgres:postgres@db/x", "VALKEY_URL": VALKEY},
            "DATABASE_URL: placeholder password refused in production",
        ),
        (
            {"DATABASE_URL": "postgresql://app:PASSWORD@db/x", "VALKEY_URL": VALKEY},
            "DATABASE_URL: placeholder password refused in production",
        ),
        (
            {"DATABASE_URL": PG, "VALKEY_URL": "redis://:secret@cache:6379/0"},
            "VALKEY_URL: placeholder password refused in production",
        ),
        (
            {"DATABASE_URL": PG, "VALKEY_URL": "redis://:@cache:6379/0"},
            "VALKEY_URL: placeholder password refused in production",
        ),
    ],
)
def test_production_refuses_placeholders_and_missing_urls(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"ENV": "production", **PROD_AUTH, **environ})
    assert str(caught.value) == message


def test_production_with_real_secrets() -> None:
    settings = Settings.from_env(
        {"ENV": "production", "DATABASE_URL": PG, "VALKEY_URL": VALKEY, **PROD_AUTH}
    )
    assert (settings.env, settings.embedded, settings.auth_local) == ("production", False, False)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {},
            "AUTH_JWKS_URL: required when ENV=production (or AUTH_PUBLIC_KEY): the local "
            "development issuer is refused",
        ),
        (
            {"AUTH_ISSUER": "https://login.myashes.ai", "AUTH_AUDIENCE": "myashes-backend"},
            "AUTH_JWKS_URL: required when ENV=production (or AUTH_PUBLIC_KEY): the local "
            "development issuer is refused",
        ),
        (
            {**PROD_AUTH, "AUTH_JWKS_URL": "http://login.myashes.ai/jwks.json"},
            "AUTH_JWKS_URL: scheme must be https",
        ),
        (
            {**PROD_AUTH, "AUTH_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"},
            "AUTH_PUBLIC_KEY: set AUTH_JWKS_URL or AUTH_PUBLIC_KEY, not both",
        ),
        (
            {**PROD_AUTH, "AUTH_ISSUER": ""},
            "AUTH_ISSUER: required with AUTH_JWKS_URL or AUTH_PUBLIC_KEY",
        ),
        (
            {**PROD_AUTH, "AUTH_AUDIENCE": " "},
            "AUTH_AUDIENCE: required with AUTH_JWKS_URL or AUTH_PUBLIC_KEY",
        ),
    ],
)
def test_production_refuses_the_local_issuer_and_half_auth(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {"ENV": "production", "DATABASE_URL": PG, "VALKEY_URL": VALKEY, **environ}
        )
    assert str(caught.value) == message


def test_development_uses_the_local_issuer_and_takes_http_jwks() -> None:
    assert Settings.from_env({}).auth_local is True
    assert Settings.from_env({"ENV": "test"}).auth_local is True
    settings = Settings.from_env(
        {**PROD_AUTH, "AUTH_JWKS_URL": "http://127.0.0.1:9/jwks.json", "ENV": "development"}
    )
    assert (settings.auth_local, settings.auth_jwks_url) == (False, "http://127.0.0.1:9/jwks.json")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**PROD_AUTH, "AUTH_JWKS_URL": "file:///etc/passwd"})
    assert str(caught.value) == "AUTH_JWKS_URL: scheme must be http or https"


def test_development_allows_placeholders_and_embedded() -> None:
    settings = Settings(database_url="postgresql://postgres:postgres@localhost/x")
    assert settings.embedded is True
    assert settings.with_stores(PG, VALKEY).embedded is False
