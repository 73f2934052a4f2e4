"""The local development issuer: an Ed25519 key under DATA_DIR that signs tokens for
`python -m service token` and verifies them in `make run` (never in production: Settings
refuses it). Its public key is served at /.well-known/jwks.json."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt import PyJWK

from service.auth.keys import public_jwk
from service.config import Settings

LOCAL_ISSUER = "myashes-local"
LOCAL_AUDIENCE = "myashes-api"
KEY_FILE = Path("auth") / "local-issuer-ed25519.pem"


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (the key's stable kid)."""
    members = {name: jwk[name] for name in ("crv", "kty", "x")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _load_or_create(path: Path) -> ed25519.Ed25519PrivateKey:
    """The key at `path`, created (mode 0600) when missing. Safe when several workers start
    at once: a new key is written aside and linked into place; the first link wins."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
        finally:
            os.close(fd)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another worker won: use its key
        finally:
            aside.unlink()
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


class LocalIssuer:
    def __init__(self, key: ed25519.Ed25519PrivateKey, issuer: str, audience: str) -> None:
        self._key = key
        self.issuer = issuer
        self.audience = audience
        self.kid = thumbprint(public_jwk(key.public_key()))
        self._jwk = public_jwk(key.public_key(), kid=self.kid)
        self.public_key: PyJWK = PyJWK.from_dict(self._jwk)

    @classmethod
    def of(cls, settings: Settings) -> LocalIssuer:
        """The issuer of this DATA_DIR (its key created on first use)."""
        key = _load_or_create(Path(settings.data_dir) / KEY_FILE)
        return cls(
            key, settings.auth_issuer or LOCAL_ISSUER, settings.auth_audience or LOCAL_AUDIENCE
        )

    def jwks(self) -> dict[str, Any]:
        """The public JWKS (what /.well-known/jwks.json serves)."""
        return {"keys": [dict(self._jwk)]}

    def mint(self, sub: str, name: str, roles: Iterable[str] = (), ttl_s: int = 3600) -> str:
        """A signed token for this player (EdDSA), valid for ttl_s seconds."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "name": name,
            "roles": sorted(set(roles)),
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
        }
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self.kid})
