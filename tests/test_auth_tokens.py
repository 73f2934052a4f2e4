"""Bearer tokens through HTTP against a JWKS served by a local server: every bad token is a 401
authentication_failed (never anonymous), key rotation, the refetch throttle, keys down."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from service.app import create_app
from service.auth import keys
from tests.apps import serving
from tests.auth_keys import (
    AUDIENCE,
    ISSUER,
    PLAYER,
    JwksServer,
    Key,
    bearer,
    claims,
    jwks_server,
    provider_settings,
)
from tests.conftest import Stores, clean_stores, make_settings
from tests.factories import API, build_body, error, headers, new_session

RS = Key.new("rs-1", "RS256")
ES = Key.new("es-1", "ES256")
ED = Key.new("ed-1", "EdDSA")
STRANGER = Key.new("rs-1", "RS256")  # same kid as RS, another key: a forged signature
INVALID = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
STATUS = f"{API}/builds/auth/status"


@pytest.fixture
def provider() -> Iterator[JwksServer]:
    with jwks_server(RS, ES, ED) as server:
        yield server


@pytest.fixture
def settings_overrides(provider: JwksServer, request: pytest.FixtureRequest) -> dict[str, Any]:
    extra = dict(getattr(request, "param", {"auth_jwks_min_refetch_s": 0.0}))
    return provider_settings(auth_jwks_url=provider.url, **extra)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], body: dict[str, Any], signature: bytes = b"") -> str:
    parts = [b64(json.dumps(header).encode()), b64(json.dumps(body).encode())]
    return ".".join([*parts, b64(signature)])


def hs256_with_public_key() -> str:
    """The classic confusion attack: HMAC-signed with the provider's public key as secret."""
    header = {"alg": "HS256", "typ": "JWT", "kid": RS.kid}
    signing_input = ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims()).encode())])
    mac = hmac.new(RS.public_pem().encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def tampered() -> str:
    head, _, signature = RS.sign(claims()).split(".")
    return ".".join(
        [head, b64(json.dumps(claims(sub="steam:1", roles=["admin"])).encode()), signature]
    )


def failed(message: str) -> dict[str, Any]:
    return error("authentication_failed", message, 401)


NOW = int(time.time())
BAD_TOKENS = [
    ("garbage", "Bearer not-a-jwt", "Malformed bearer token"),
    ("basic scheme", "Basic YWxpY2U6c2VjcmV0", "Authorization must be 'Bearer <token>'"),
    ("empty bearer", "Bearer ", "Authorization must be 'Bearer <token>'"),
    ("two tokens", "Bearer a b", "Authorization must be 'Bearer <token>'"),
    (
        "alg none",
        "Bearer " + unsigned({"alg": "none", "typ": "JWT", "kid": RS.kid}, claims()),
        "Token algorithm 'none' is not accepted (only RS256, ES256, EdDSA)",
    ),
    (
        "HS256 with the public key",
        "Bearer " + hs256_with_public_key(),
        "Token algorithm 'HS256' is not accepted (only RS256, ES256, EdDSA)",
    ),
    (
        "RS384 (not accepted)",
        "Bearer " + unsigned({"alg": "RS384", "kid": RS.kid}, claims(), b"x" * 256),
        "Token algorithm 'RS384' is not accepted (only RS256, ES256, EdDSA)",
    ),
    (
        "forged signature",
        "Bearer " + STRANGER.sign(claims()),
        "Token rejected: Signature verification failed",
    ),
    ("tampered claims", "Bearer " + tampered(), "Token rejected: Signature verification failed"),
    (
        "alg of another key type",
        "Bearer " + unsigned({"alg": "RS256", "kid": ED.kid}, claims(), b"x" * 256),
        "Token rejected: Token algorithm 'RS256' does not match the key's algorithm 'EdDSA'",
    ),
    (
        "expired beyond the leeway",
        "Bearer " + RS.sign(claims(exp=NOW - 31 - 60, iat=NOW - 3600, nbf=NOW - 3600)),
        "Token has expired",
    ),
    (
        "not yet valid beyond the leeway",
        "Bearer " + RS.sign(claims(nbf=NOW + 3600)),
        "Token rejected: The token is not yet valid (nbf)",
    ),
    (
        "wrong issuer",
        "Bearer " + ES.sign(claims(iss="https://evil.example")),
        "Token rejected: Invalid issuer",
    ),
    (
        "wrong audience",
        "Bearer " + ED.sign(claims(aud="another-service")),
        "Token rejected: Audience doesn't match",
    ),
    (
        "no audience",
        "Bearer " + RS.sign(claims(aud=None)),
        'Token rejected: Token is missing the "aud" claim',
    ),
    (
        "no expiry",
        "Bearer " + RS.sign(claims(exp=None)),
        'Token rejected: Token is missing the "exp" claim',
    ),
    (
        "no subject",
        "Bearer " + RS.sign(claims(sub=None)),
        'Token rejected: Token is missing the "sub" claim',
    ),
    (
        "subject too long",
        "Bearer " + RS.sign(claims(sub="steam:" + "9" * 200)),
        "Token subject (sub) must be 1-128 printable chars",
    ),
    (
        "roles not a list",
        "Bearer " + RS.sign(claims(roles="admin")),
        "Token claim roles must be a list of strings",
    ),
    (
        "unknown kid",
        "Bearer " + Key.new("rs-9").sign(claims()),
        "Token signed with an unknown key: no key 'rs-9' in the identity provider's key set",
    ),
    (
        "no kid",
        "Bearer " + unsigned({"alg": "ES256"}, claims(), b"x" * 64),
        "Token signed with an unknown key: the token names no key (kid)",
    ),
]


@pytest.mark.parametrize(
    ("authorization", "message"),
    [pytest.param(a, m, id=case) for case, a, m in BAD_TOKENS],
)
async def test_bad_tokens_are_401_and_never_anonymous(
    client: httpx.AsyncClient, sql: asyncpg.Connection, authorization: str, message: str
) -> None:
    session = new_session()
    for response in (
        await client.get(STATUS, headers={**headers(session), "Authorization": authorization}),
        await client.post(
            f"{API}/builds",
            json=build_body(),
            headers={**headers(session), "Authorization": authorization},
        ),
        await client.get(f"{API}/builds", headers={"Authorization": authorization}),
    ):
        assert response.status_code == 401
        assert response.json() == failed(message)
        assert response.headers["WWW-Authenticate"] == INVALID["WWW-Authenticate"]
        assert response.headers["X-Session-ID"].startswith("sess_")
    assert await sql.fetchval("SELECT count(*) FROM builds") == 0


@pytest.mark.parametrize("key", [RS, ES, ED], ids=lambda k: k.algorithm)
async def test_each_accepted_algorithm(client: httpx.AsyncClient, key: Key) -> None:
    response = await client.get(STATUS, headers=bearer(key.sign(claims(roles=["admin"]))))
    assert response.status_code == 200
    assert response.json() == {
        "authenticated": True,
        "player": {"display_name": "Alice"},
        "roles": ["admin"],
    }
    assert PLAYER not in response.text


async def test_clock_skew_within_30_s_is_accepted(client: httpx.AsyncClient) -> None:
    now = int(time.time())
    skewed = claims(exp=now - 20, nbf=now + 20, iat=now + 20)
    response = await client.get(STATUS, headers=bearer(RS.sign(skewed)))
    assert (response.status_code, response.json()["authenticated"]) == (200, True)


async def test_no_token_is_anonymous_exactly_as_before(client: httpx.AsyncClient) -> None:
    response = await client.get(STATUS)
    assert response.status_code == 200
    assert response.json() == {"authenticated": False, "player": None, "roles": []}
    assert "WWW-Authenticate" not in response.headers


async def test_operational_routes_ignore_the_header(client: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/openapi.json"):
        response = await client.get(path, headers={"Authorization": "Bearer not-a-jwt"})
        assert response.status_code == 200, path


async def test_display_names_are_cleaned(client: httpx.AsyncClient) -> None:
    cases = {
        "Al\u202eice\u200b \n  Smith": "Alice Smith",
        "\u2066\u200b ": "Player",
        "x" * 100: "x" * 64,
    }
    for raw, shown in cases.items():
        response = await client.get(STATUS, headers=bearer(RS.sign(claims(name=raw))))
        assert response.json()["player"] == {"display_name": shown}
    nameless = await client.get(STATUS, headers=bearer(RS.sign(claims(name=None))))
    assert nameless.json()["player"] == {"display_name": "Player"}


async def test_key_rotation(client: httpx.AsyncClient, provider: JwksServer) -> None:
    """A new kid is fetched on first sight; the old key keeps working while it is listed."""
    assert provider.hits == 1  # the worker's first download at start
    old = await client.get(STATUS, headers=bearer(RS.sign(claims())))
    assert old.status_code == 200
    assert provider.hits == 1  # a known kid: no download
    rotated = Key.new("rs-2")
    provider.keys.append(rotated)
    new = await client.get(STATUS, headers=bearer(rotated.sign(claims(name="Bob"))))
    assert (new.status_code, new.json()["player"]) == (200, {"display_name": "Bob"})
    assert provider.hits == 2  # one refetch for the unknown kid
    still = await client.get(STATUS, headers=bearer(RS.sign(claims(name="Carol"))))
    assert (still.status_code, still.json()["player"]) == (200, {"display_name": "Carol"})
    assert provider.hits == 2


@pytest.mark.parametrize("settings_overrides", [{"auth_jwks_min_refetch_s": 300.0}], indirect=True)
async def test_unknown_kids_refetch_at_most_once_per_interval(
    client: httpx.AsyncClient, provider: JwksServer
) -> None:
    assert provider.hits == 1
    late = Key.new("rs-late")
    provider.keys.append(late)
    for n in range(5):
        response = await client.get(
            STATUS, headers=bearer(Key.new(f"nope-{n}", "EdDSA").sign(claims()))
        )
        assert response.status_code == 401
    # Five unknown kids right after the start download: no new download (interval 300 s),
    # so the key added meanwhile is not seen yet either.
    assert provider.hits == 1
    response = await client.get(STATUS, headers=bearer(late.sign(claims())))
    assert response.status_code == 401
    assert provider.hits == 1


async def test_verified_tokens_are_remembered(
    client: httpx.AsyncClient, provider: JwksServer
) -> None:
    token = RS.sign(claims())
    assert (await client.get(STATUS, headers=bearer(token))).status_code == 200
    provider.up = False
    provider.keys.remove(RS)
    # The provider dropped the key and is down: the verified token is still good (remembered
    # until it expires); a new token of that key is checked against the cached key set.
    assert (await client.get(STATUS, headers=bearer(token))).status_code == 200
    fresh = await client.get(STATUS, headers=bearer(RS.sign(claims(name="Dave"))))
    assert (fresh.status_code, fresh.json()["player"]) == (200, {"display_name": "Dave"})
    assert provider.hits == 1


@pytest.fixture
def provider_down() -> Iterator[JwksServer]:
    with jwks_server(RS) as server:
        server.up = False
        yield server


async def test_keys_unreachable_and_none_cached_is_503(
    stores: Stores, provider_down: JwksServer
) -> None:
    await clean_stores(stores)
    settings = make_settings(
        stores, **provider_settings(auth_jwks_url=provider_down.url, auth_jwks_min_refetch_s=0.0)
    )
    async with serving(create_app(settings)) as client:
        token = RS.sign(claims())
        response = await client.get(STATUS, headers=bearer(token))
        assert response.status_code == 503
        assert response.json() == error(
            "service_unavailable", "The identity provider's keys are unavailable; retry later", 503
        )
        assert int(response.headers["Retry-After"]) >= 1
        anonymous = await client.get(STATUS)  # no token: unaffected
        assert anonymous.status_code == 200
        provider_down.up = True
        response = await client.get(STATUS, headers=bearer(token))
        assert (response.status_code, response.json()["authenticated"]) == (200, True)


async def test_issuer_and_audience_are_the_configured_ones(client: httpx.AsyncClient) -> None:
    for iss, aud, status in ((ISSUER, AUDIENCE, 200), (ISSUER + "/", AUDIENCE, 401)):
        response = await client.get(STATUS, headers=bearer(RS.sign(claims(iss=iss, aud=aud))))
        assert response.status_code == status
    listed = await client.get(STATUS, headers=bearer(RS.sign(claims(aud=["other", AUDIENCE]))))
    assert listed.status_code == 200


async def test_a_stale_key_set_refreshes_in_the_background_and_survives_an_outage(
    client: httpx.AsyncClient, provider: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older than JWKS_MAX_AGE_S: a request starts one background download and is answered
    with the cached keys; a failed refresh is retried after JWKS_STALE_RETRY_S, not once per
    request; a refresh that succeeds forgets the keys the provider dropped."""
    deadline = time.monotonic() + 30

    async def hits(n: int) -> None:
        while provider.hits < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the download runs in a thread
        assert provider.hits == n

    monkeypatch.setattr(keys, "JWKS_MAX_AGE_S", 0.0)  # every set is stale at once
    monkeypatch.setattr(keys, "JWKS_STALE_RETRY_S", 0.0)
    provider.up = False
    first = await client.get(STATUS, headers=bearer(ES.sign(claims(name="P"))))
    assert (first.status_code, first.json()["player"]) == (200, {"display_name": "P"})
    await hits(2)  # start-up + the refresh this request began (it failed)
    monkeypatch.setattr(keys, "JWKS_STALE_RETRY_S", 300.0)
    for n in range(5):
        response = await client.get(STATUS, headers=bearer(ES.sign(claims(name=f"P{n}"))))
        assert (response.status_code, response.json()["player"]) == (200, {"display_name": f"P{n}"})
    await hits(2)  # no download per request while the provider is down
    monkeypatch.setattr(keys, "JWKS_STALE_RETRY_S", 0.0)
    provider.up = True
    provider.keys.remove(ES)
    assert (await client.get(STATUS, headers=bearer(ES.sign(claims())))).status_code == 200
    await hits(3)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the refreshed set replaces the cached one
        dropped = await client.get(STATUS, headers=bearer(ES.sign(claims(name="late"))))
        if dropped.status_code == 401:
            break
        await asyncio.sleep(0.05)
    assert dropped.json()["error"] == "authentication_failed"
