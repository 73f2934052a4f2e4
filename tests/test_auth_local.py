"""The local development issuer: a key under DATA_DIR, its JWKS at /.well-known/jwks.json,
`python -m service token` printing tokens the running server accepts; refused in production."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest

from service.app import create_app
from service.auth.local_issuer import KEY_FILE, LOCAL_AUDIENCE, LOCAL_ISSUER, LocalIssuer
from service.config import Settings
from tests.apps import serving
from tests.auth_keys import Key, bearer, provider_settings
from tests.conftest import ROOT, Stores, clean_stores, make_settings
from tests.factories import API, error
from tests.server import ServerProcess

STATUS = f"{API}/builds/auth/status"


def token_cli(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH_", "ENV"))}
    return subprocess.run(
        [sys.executable, "-m", "service", "token", *args],
        cwd=ROOT,
        env={**clean, "DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
async def local(stores: Stores, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    await clean_stores(stores)
    async with serving(create_app(make_settings(stores, data_dir=str(tmp_path)))) as client:
        yield client


async def test_cli_tokens_are_accepted_and_the_jwks_verifies_them(
    local: httpx.AsyncClient, tmp_path: Path
) -> None:
    done = token_cli(tmp_path, "--sub", "steam:123", "--name", "Alice", "--role", "admin")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    response = await local.get(STATUS, headers=bearer(token))
    assert response.json() == {
        "authenticated": True,
        "player": {"display_name": "Alice"},
        "roles": ["admin"],
    }
    jwks = await local.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    (key,) = jwks.json()["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert "d" not in key  # public only
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    verified = jwt.decode(
        token,
        jwt.PyJWK.from_dict(key),
        algorithms=["EdDSA"],
        issuer=LOCAL_ISSUER,
        audience=LOCAL_AUDIENCE,
    )
    assert (verified["sub"], verified["name"], verified["exp"] - verified["iat"]) == (
        "steam:123",
        "Alice",
        3600,
    )
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_short_lived_cli_token_and_a_player_without_roles(
    local: httpx.AsyncClient, tmp_path: Path
) -> None:
    done = token_cli(tmp_path, "--sub", "steam:9", "--name", "Bo", "--ttl", "1")
    token = done.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["exp"] - claims["iat"], claims["roles"]) == (1, [])
    response = await local.get(STATUS, headers=bearer(token))
    assert response.json()["roles"] == []


async def test_a_token_of_another_data_dir_is_refused(
    local: httpx.AsyncClient, tmp_path: Path
) -> None:
    other = token_cli(tmp_path / "elsewhere", "--sub", "steam:1", "--name", "Eve").stdout.strip()
    response = await local.get(STATUS, headers=bearer(other))
    assert response.status_code == 401
    assert response.json() == error(
        "authentication_failed", "Token rejected: Signature verification failed", 401
    )


def test_workers_starting_at_once_share_one_key(tmp_path: Path) -> None:
    settings = Settings(env="test", data_dir=str(tmp_path))
    with ThreadPoolExecutor(8) as pool:
        kids = set(pool.map(lambda _: LocalIssuer.of(settings).kid, range(16)))
    assert len(kids) == 1
    assert [p.name for p in (tmp_path / KEY_FILE).parent.iterdir()] == [KEY_FILE.name]


def test_the_token_command_refuses_other_issuers_and_production(tmp_path: Path) -> None:
    production = token_cli(
        tmp_path,
        "--sub",
        "s",
        "--name",
        "n",
        ENV="production",
        DATABASE_URL="postgresql://app:Zq8-v1mT-3kfp@db.internal:5432/myashes",
        VALKEY_URL="redis://:Wn2-r7Hk-x0aP@cache.internal:6379/0",
    )
    assert production.returncode == 2
    assert "AUTH_JWKS_URL: required when ENV=production" in production.stderr
    provider = token_cli(
        tmp_path,
        "--sub",
        "s",
        "--name",
        "n",
        AUTH_PUBLIC_KEY=Key.new("k", "EdDSA").public_pem(),
        AUTH_ISSUER="https://login.example",
        AUTH_AUDIENCE="api",
    )
    assert provider.returncode == 2
    assert "signs with the local development issuer only" in provider.stderr
    assert production.stdout == provider.stdout == ""
    assert not (tmp_path / KEY_FILE).exists()


async def test_no_local_jwks_with_a_provider(stores: Stores) -> None:
    await clean_stores(stores)
    settings = make_settings(
        stores, **provider_settings(auth_public_key=Key.new("k", "EdDSA").public_pem())
    )
    async with serving(create_app(settings)) as client:
        response = await client.get("/.well-known/jwks.json")
        assert response.status_code == 404


@pytest.mark.server
def test_make_run_accepts_the_printed_token(stores: Stores, tmp_path: Path) -> None:
    """A fresh machine: `python -m service run` in development with no AUTH_* set, a token
    from `python -m service token` with the same DATA_DIR, curl-equivalent requests."""
    env = {"DATA_DIR": str(tmp_path), "ENV": "development"}
    # Two workers create the key at once at start: they must end up with the same one.
    server = ServerProcess(stores.database_url, stores.valkey_url, workers=2, **env).start()
    try:
        token = token_cli(tmp_path, "--sub", "steam:123", "--name", "Alice").stdout.strip()
        for _ in range(4):
            response = httpx.get(server.base_url + STATUS, headers=bearer(token), timeout=10)
            assert response.json()["player"] == {"display_name": "Alice"}
        jwks = httpx.get(server.base_url + "/.well-known/jwks.json", timeout=10).json()
        assert [k["kid"] for k in jwks["keys"]] == [jwt.get_unverified_header(token)["kid"]]
    finally:
        server.terminate()
        server.wait(60)


async def test_role_alone_is_enough_for_the_admin_page(
    local: httpx.AsyncClient, tmp_path: Path
) -> None:
    """README "Admin page": `python -m service token --role admin` opens /admin locally."""
    done = token_cli(tmp_path, "--role", "admin")
    assert done.returncode == 0, done.stderr
    response = await local.get(
        "/api/v1/admin/feedback/summary", headers=bearer(done.stdout.strip())
    )
    assert response.status_code == 200
    status = await local.get(STATUS, headers=bearer(done.stdout.strip()))
    assert status.json()["player"] == {"display_name": "Developer"}
