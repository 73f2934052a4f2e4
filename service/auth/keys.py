"""The keys token signatures are checked against: one fixed public key, or the identity
provider's JWKS (PyJWT's PyJWKClient downloads and parses it; caching, single-flight refetch
on an unknown `kid` and its throttle are here, so the event loop never waits on a download
it does not need)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK, PyJWKClient

from service.config import SettingsError

log = logging.getLogger("myashes.auth")

# Asymmetric only (contract): never `none`, never HS* (a public key must not become a secret).
ALGORITHMS = ("RS256", "ES256", "EdDSA")
MIN_RSA_BITS = 2048
# A key set older than this is refreshed in the background (a key the provider dropped stops
# being trusted within this bound).
JWKS_MAX_AGE_S = 300.0
JWKS_STALE_RETRY_S = 30.0  # a failed background refresh is retried after this long
JWKS_TIMEOUT_S = 3.0


class UnknownKey(Exception):
    """The token names a key (kid) that the provider does not list."""


class KeysUnavailable(Exception):
    """No key is known and the provider cannot be reached: retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class KeySource(Protocol):
    async def open(self) -> None: ...

    async def key_for(self, kid: str | None) -> PyJWK: ...


def public_jwk(public_key: object, kid: str | None = None) -> dict[str, Any]:
    """A public key as a JWK naming its one algorithm (RSA -> RS256, P-256 -> ES256,
    Ed25519 -> EdDSA); ValueError for any other key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {public_key.key_size} bits (at least {MIN_RSA_BITS})")
        algorithm = "RS256"
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(public_key.curve, ec.SECP256R1):
            raise ValueError(f"EC key on {public_key.curve.name} (only P-256, ES256)")
        algorithm = "ES256"
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        algorithm = "EdDSA"
    else:
        raise ValueError(f"unsupported key type {type(public_key).__name__}")
    jwk = jwt.get_algorithm_by_name(algorithm).to_jwk(public_key, as_dict=True)
    jwk.update({"alg": algorithm, "use": "sig"})
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def jwk_of(public_key: object, kid: str | None = None) -> PyJWK:
    """A public key as a PyJWK bound to its one algorithm: a token signed with any other
    algorithm is refused for it."""
    return PyJWK.from_dict(public_jwk(public_key, kid))


def load_public_key(value: str) -> PyJWK:
    """AUTH_PUBLIC_KEY: PEM text, or the path of a PEM file."""
    text = value if value.lstrip().startswith("-----BEGIN") else None
    if text is None:
        try:
            text = Path(value).read_text()
        except OSError as exc:
            raise SettingsError(
                f"AUTH_PUBLIC_KEY: neither PEM nor a readable file ({exc})"
            ) from None
    try:
        return jwk_of(load_pem_public_key(text.encode()))
    except ValueError as exc:
        raise SettingsError(f"AUTH_PUBLIC_KEY: not a usable public key ({exc})") from None


class StaticKey:
    """One configured key (AUTH_PUBLIC_KEY, or the local issuer's): every token is checked
    against it whatever `kid` it names."""

    def __init__(self, key: PyJWK) -> None:
        self.key = key

    async def open(self) -> None:
        return None

    async def key_for(self, kid: str | None) -> PyJWK:
        return self.key


class JwksKeys:
    """The provider's JWKS, cached per worker. A `kid` not in the cache refetches the set, at
    most once per `min_refetch_s` (concurrent requests share one download); a set older than
    JWKS_MAX_AGE_S is refreshed in the background while the cached keys keep serving."""

    def __init__(self, url: str, *, min_refetch_s: float, timeout_s: float = JWKS_TIMEOUT_S):
        # PyJWKClient downloads (urllib, no redirects) and parses; its own cache is off.
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=timeout_s)
        self.url = url
        self.min_refetch_s = min_refetch_s
        self.keys: dict[str, PyJWK] = {}
        self.fetches = 0  # downloads attempted (tests, logs)
        self._fetched_at = -math.inf  # monotonic time of the last good download
        self._attempted_at = -math.inf
        self._download: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """First download at worker start; a failure is logged and retried on demand."""
        await self._refresh()

    async def key_for(self, kid: str | None) -> PyJWK:
        if kid is None:
            raise UnknownKey("the token names no key (kid)")
        key = self.keys.get(kid)
        if key is not None:
            now = time.monotonic()
            if (
                now - self._fetched_at > JWKS_MAX_AGE_S
                and now - self._attempted_at > JWKS_STALE_RETRY_S
            ):
                self._start_download()  # background: this request goes on with the cached key
            return key
        await self._refresh()
        key = self.keys.get(kid)
        if key is not None:
            return key
        if not self.keys:
            wait = self._attempted_at + self.min_refetch_s - time.monotonic()
            raise KeysUnavailable("the identity provider's keys are unavailable", max(1.0, wait))
        raise UnknownKey(f"no key {kid!r} in the identity provider's key set")

    async def _refresh(self) -> None:
        """Download now unless one is under way (then wait for it) or one began too recently."""
        if self._download is None and time.monotonic() - self._attempted_at < self.min_refetch_s:
            return
        task = self._start_download()
        await asyncio.shield(task)

    def _start_download(self) -> asyncio.Task[None]:
        if self._download is None:
            self._attempted_at = time.monotonic()
            self._download = asyncio.get_running_loop().create_task(self._fetch())
        return self._download

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            jwk_set = await asyncio.to_thread(self._client.get_jwk_set, True)
        except (jwt.PyJWTError, OSError, ValueError) as exc:
            log.warning("JWKS download from %s failed: %s", self.url, exc)
            return
        finally:
            self._download = None  # (no await follows: nobody sees it unset before the keys)
        keys = {key.key_id: key for key in jwk_set.keys if key.key_id and _usable(key)}
        if not keys:
            log.warning("JWKS from %s lists no usable signing key (%s)", self.url, ALGORITHMS)
            return
        self.keys, self._fetched_at = keys, time.monotonic()


def _usable(key: PyJWK) -> bool:
    """A signing key of an accepted algorithm, of the size that algorithm requires."""
    if key.public_key_use not in ("sig", None) or key.algorithm_name not in ALGORITHMS:
        return False
    try:
        return jwk_of(key.key).algorithm_name == key.algorithm_name
    except ValueError:
        return False
