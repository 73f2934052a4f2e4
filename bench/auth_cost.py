"""Bearer token verification cost per request, in-process (service.auth.tokens.Verifier):
a token seen before (the steady state: one hash + one dictionary lookup) and a token seen for
the first time (signature + claims), per accepted algorithm. `python -m bench.auth_cost`."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.auth.keys import StaticKey, jwk_of  # noqa: E402
from service.auth.tokens import Verifier  # noqa: E402

ISSUER, AUDIENCE = "https://login.bench", "myashes-bench"
HITS = 200_000
FIRST_SIGHT = 2_000


def _private_key(algorithm: str) -> Any:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def _headers(private: Any, algorithm: str, count: int) -> list[str]:
    now = int(time.time())
    return [
        "Bearer "
        + jwt.encode(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": f"steam:{n}",
                "name": f"Player {n}",
                "roles": [],
                "iat": now,
                "exp": now + 3600,
            },
            private,
            algorithm=algorithm,
            headers={"kid": "bench"},
        )
        for n in range(count)
    ]


async def _per_call_us(verifier: Verifier, headers: list[str], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for header in headers:
            await verifier.player(header)
    return (time.perf_counter() - started) / (repeat * len(headers)) * 1e6


async def measure() -> dict[str, float]:
    """µs per verification: `cached` and `first_<alg>` for each accepted algorithm."""
    results: dict[str, float] = {}
    for algorithm in ("EdDSA", "ES256", "RS256"):
        private = _private_key(algorithm)
        verifier = Verifier(
            StaticKey(jwk_of(private.public_key())), issuer=ISSUER, audience=AUDIENCE
        )
        fresh = _headers(private, algorithm, FIRST_SIGHT)
        results[f"first_{algorithm}"] = await _per_call_us(verifier, fresh, 1)
        if algorithm == "EdDSA":  # the cache does not depend on the algorithm
            hot = fresh[:50]
            results["cached"] = await _per_call_us(verifier, hot, HITS // len(hot))
    return {k: round(v, 2) for k, v in results.items()}


def main() -> None:
    for name, us in asyncio.run(measure()).items():
        print(f"{name:14s} {us:8.2f} µs per request")


if __name__ == "__main__":
    main()
