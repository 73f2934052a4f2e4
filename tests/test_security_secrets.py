"""Secrets and identities: placeholder secrets refused in production, none in the repo, and a
session id never shown to another session or written raw to a log."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.config import Settings, SettingsError, is_placeholder
from service.ctx import App
from tests.factories import API, build_body, headers, new_session

ROOT = Path(__file__).resolve().parent.parent
GOOD_PG = "postgresql://app:Zq8-v1mT-3kfp@db.internal:5432/myashes"
GOOD_VALKEY = "redis://:Wn2-r7Hk-x0aP@cache.internal:6379/0"
PROD_AUTH = {
    "AUTH_JWKS_URL": "https://login.myashes.ai/.well-known/jwks.json",
    "AUTH_ISSUER": "https://login.myashes.ai",
    "AUTH_AUDIENCE": "myashes-backend",
}


@pytest.mark.parametrize(
    "password",
    [
        "changeme",
        "ChangeMe123",
        "password1!",
        "postgres",
        "secret",
        "<password>",
        "%3Cpassword%3E",
        "${DB_PASSWORD}",
        "{{ .Values.password }}",
        "$PGPASSWORD",
        "xxxxxxxx",
        "",
    ],
)
def test_production_refuses_placeholder_passwords(password: str) -> None:
    assert is_placeholder(password)
    for name, url in (
        ("DATABASE_URL", f"postgresql://app:{password}@db.internal:5432/myashes"),
        ("VALKEY_URL", f"redis://:{password}@cache.internal:6379/0"),
    ):
        environ = {
            "ENV": "production",
            "DATABASE_URL": GOOD_PG,
            "VALKEY_URL": GOOD_VALKEY,
            **PROD_AUTH,
        }
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({**environ, name: url})
        assert str(caught.value) == f"{name}: placeholder password refused in production"
        assert password not in str(caught.value) or password == ""


def test_real_passwords_pass_and_stay_masked() -> None:
    settings = Settings.from_env(
        {"ENV": "production", "DATABASE_URL": GOOD_PG, "VALKEY_URL": GOOD_VALKEY, **PROD_AUTH}
    )
    text = repr(settings)
    assert "Zq8-v1mT-3kfp" not in text
    assert "Wn2-r7Hk-x0aP" not in text


_CREDENTIAL_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:([^\s@/'\"]*)@")
_SKIP_DIRS = {".git", ".venv", ".data", "node_modules", ".mypy_cache", ".ruff_cache"}


def _repo_files() -> Iterator[Path]:
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if path.is_file() and not parts & _SKIP_DIRS and "__pycache__" not in parts:
            yield path


def test_no_secret_values_in_the_repo() -> None:
    """Every URL with a password in the repo (tests' made-up ones aside) is a placeholder."""
    offenders = []
    for path in _repo_files():
        relative = path.relative_to(ROOT)
        if relative.parts[0] == "tests" or path.suffix in {".pyc", ".png", ".whl", ".gz"}:
            continue
        for match in _CREDENTIAL_URL.finditer(path.read_text(errors="ignore")):
            if not is_placeholder(match.group(1)):
                offenders.append(f"{relative}: {match.group(0)}")
    assert offenders == []


class Everything(logging.Handler):
    """Every log record, with its extra fields, as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__!r}")


@pytest.fixture
def all_logs() -> Iterator[Everything]:
    """Listens on every logger the app configures, at the levels it configures."""
    handler = Everything()
    names = ("", "myashes", "sanic", "sanic.access", "sanic.error", "tortoise", "aerich")
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"log_level": "DEBUG"}  # the most a deployment can log


async def test_no_response_shows_another_sessions_id_and_no_log_has_one(
    app: App, client: httpx.AsyncClient, all_logs: Everything, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = new_session(), new_session()
    a = headers(alice)
    public = (await client.post(f"{API}/builds", json=build_body(), headers=a)).json()
    private = (
        await client.post(f"{API}/builds", json=build_body(is_public=False), headers=a)
    ).json()
    await client.post(f"{API}/builds/{public['build_id']}/vote", json={"rating": 5}, headers=a)
    feedback = {"query": "q", "response_snippet": "s", "search_mode": "deep", "rating": "down"}
    await client.post(f"{API}/feedback", json=feedback, headers=a)
    search = {"query": "paladin", "search_mode": "quick", "result_count": 2}
    await client.post(f"{API}/analytics/search", json=search, headers=a)
    await client.post(f"{API}/builds/{public['build_id']}/vote", json={"rating": 1}, headers=a)
    await client.get(f"{API}/nothing", headers=a)
    await app.ctx.search.flush()

    b = headers(bob)
    seen = [
        await client.get(url, headers=b)
        for url in (
            f"{API}/builds",
            f"{API}/builds?sort=popular",
            f"{API}/builds/popular?period=all",
            f"{API}/builds/templates",
            f"{API}/builds/{public['build_id']}",
            f"{API}/builds/{private['build_id']}",
            f"{API}/analytics/popular-queries",
            "/health",
            "/health/ready",
            "/metrics",
            "/openapi.json",
            "/docs",
        )
    ]
    seen.append(await client.patch(f"{API}/builds/{public['build_id']}", json={}, headers=b))
    seen.append(await client.delete(f"{API}/builds/{public['build_id']}", headers=b))
    seen.append(
        await client.post(f"{API}/builds/{private['build_id']}/vote", json={"rating": 2}, headers=b)
    )
    assert {r.status_code for r in seen} <= {200, 403, 404}
    assert [r.url.path for r in seen if r.status_code == 200]  # lists were really read
    for response in seen:
        shown = response.text + repr(dict(response.headers))
        assert alice not in shown, response.url
        assert alice[5:] not in shown, response.url  # not even the hex part
        assert response.headers["X-Session-ID"] == bob
    # Access lines go straight to stderr; other records through the logging handlers.
    lines = all_logs.lines + capsys.readouterr().err.splitlines()
    assert any('"msg":"request"' in line for line in lines)  # requests were logged
    for line in lines:
        for session in (alice, bob):
            assert session[5:] not in line, line
