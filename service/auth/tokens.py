"""Bearer token -> Player: signature (asymmetric only), iss/aud/exp/nbf with 30 s leeway, the
claims the service uses; verified tokens are remembered by hash until they expire."""

from __future__ import annotations

import hashlib
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

import jwt

from service.auth.keys import ALGORITHMS, KeySource, KeysUnavailable, UnknownKey
from service.contract.errors import AuthenticationFailed, ServiceUnavailable
from service.contract.players import DISPLAY_NAME_MAX, PLAYER_ID_MAX, Player

LEEWAY_S = 30  # clock skew allowed on exp / nbf / iat (contract: at most 30 s)
CACHE_MAX = 10_000  # verified tokens remembered per worker
CACHE_MAX_AGE_S = 300.0  # and for at most this long (a key the provider drops stops working)
DEFAULT_DISPLAY_NAME = "Player"
_REQUIRED = ["exp", "iss", "aud", "sub"]


@dataclass(frozen=True, slots=True)
class _Verified:
    player: Player
    until: float  # time.time() after which the token is checked again


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header; 401 for anything else."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthenticationFailed("Authorization must be 'Bearer <token>'")
    return token


def display_name(value: object) -> str:
    """The `name` claim as shown to others: no control, format (bidi, zero-width) or
    unassigned characters, whitespace collapsed, at most DISPLAY_NAME_MAX characters."""
    if not isinstance(value, str):
        return DEFAULT_DISPLAY_NAME
    visible = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C")
    name = " ".join(visible.split())[:DISPLAY_NAME_MAX].strip()
    return name or DEFAULT_DISPLAY_NAME


def player_from(claims: dict[str, Any]) -> Player:
    """The Player a verified token describes; 401 when `sub` or `roles` is malformed."""
    sub = claims["sub"]
    if (
        not isinstance(sub, str)
        or not 1 <= len(sub) <= PLAYER_ID_MAX
        or not sub.isprintable()
        or sub != sub.strip()
    ):
        raise AuthenticationFailed(f"Token subject (sub) must be 1-{PLAYER_ID_MAX} printable chars")
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise AuthenticationFailed("Token claim roles must be a list of strings")
    return Player(id=sub, display_name=display_name(claims.get("name")), roles=frozenset(roles))


class Verifier:
    """Verifies bearer tokens for one worker. Keys come from a KeySource (JWKS or one key)."""

    def __init__(self, keys: KeySource, *, issuer: str, audience: str) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self._cache: dict[bytes, _Verified] = {}

    async def open(self) -> None:
        await self.keys.open()

    async def player(self, authorization: str) -> Player:
        """The player of an Authorization header value: 401 authentication_failed for a bad
        token, 503 service_unavailable when the keys cannot be had."""
        token = bearer_token(authorization)
        digest = hashlib.sha256(token.encode()).digest()
        remembered = self._cache.get(digest)
        if remembered is not None:
            if time.time() < remembered.until:
                return remembered.player
            del self._cache[digest]
        claims = await self._verify(token)
        player = player_from(claims)
        until = min(float(claims["exp"]), time.time() + CACHE_MAX_AGE_S)
        self._remember(digest, _Verified(player, until))
        return player

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationFailed("Malformed bearer token") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise AuthenticationFailed(
                f"Token algorithm {algorithm!r} is not accepted (only {', '.join(ALGORITHMS)})"
            )
        kid = header.get("kid")
        try:
            key = await self.keys.key_for(kid if isinstance(kid, str) else None)
        except UnknownKey as exc:
            raise AuthenticationFailed(f"Token signed with an unknown key: {exc}") from None
        except KeysUnavailable as exc:
            raise ServiceUnavailable(
                "The identity provider's keys are unavailable; retry later",
                retry_after=round(exc.retry_after_s + 0.5),
            ) from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                issuer=self.issuer,
                audience=self.audience,
                leeway=LEEWAY_S,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("Token has expired") from None
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"Token rejected: {exc}") from None
        return claims

    def _remember(self, digest: bytes, verified: _Verified) -> None:
        cache = self._cache
        if len(cache) >= CACHE_MAX:
            now = time.time()
            for key in [k for k, v in cache.items() if v.until <= now]:
                del cache[key]
            if len(cache) >= CACHE_MAX:  # still full: drop the oldest tenth
                for key in list(cache)[: CACHE_MAX // 10]:
                    del cache[key]
        cache[digest] = verified
