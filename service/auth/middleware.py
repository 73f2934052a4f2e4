"""The one place a request's Authorization header is read: verified into request.ctx.player
on every /api/ route (before rate limits), or answered 401/503 right there."""

from __future__ import annotations

from service.auth.keys import JwksKeys, KeySource, StaticKey, load_public_key
from service.auth.local_issuer import LocalIssuer
from service.auth.tokens import Verifier
from service.config import Settings
from service.ctx import ApiRequest, App

API_PREFIX = "/api/"


def make_verifier(settings: Settings) -> Verifier:
    """The verifier Settings describe: the provider's JWKS, one public key, or the local
    development issuer (its key created under DATA_DIR on first use)."""
    keys: KeySource
    if settings.auth_jwks_url is not None:
        keys = JwksKeys(settings.auth_jwks_url, min_refetch_s=settings.auth_jwks_min_refetch_s)
    elif settings.auth_public_key is not None:
        keys = StaticKey(load_public_key(settings.auth_public_key))
    else:
        local = LocalIssuer.of(settings)
        return Verifier(StaticKey(local.public_key), issuer=local.issuer, audience=local.audience)
    # Settings requires both with provider keys.
    issuer, audience = settings.auth_issuer or "", settings.auth_audience or ""
    return Verifier(keys, issuer=issuer, audience=audience)


def register(app: App) -> None:
    verifiers: list[Verifier] = []  # this worker's, made at start

    async def open_verifier(app: App) -> None:
        verifier = make_verifier(app.ctx.settings)
        await verifier.open()
        verifiers.append(verifier)

    async def authenticate(request: ApiRequest) -> None:
        if not request.path.startswith(API_PREFIX):
            return
        authorization = request.headers.get("authorization")
        if authorization is not None:
            request.ctx.player = await verifiers[0].player(authorization)

    app.before_server_start(open_verifier)
    app.middleware(authenticate, "request")
