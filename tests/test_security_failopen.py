"""Valkey down: rate limits fail open (counted, logged once per interval), never a 500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from service.app import create_app
from tests.apps import serving
from tests.conftest import Stores, make_settings
from tests.factories import API, headers, new_session
from tests.faults import TcpProxy


@pytest.fixture
async def valkey_proxy(stores: Stores) -> AsyncIterator[TcpProxy]:
    hostport = stores.valkey_url.removeprefix("redis://").partition("/")[0]
    host, _, port = hostport.rpartition(":")
    proxy = TcpProxy(host=host, port=int(port))
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
def settings_overrides(stores: Stores, valkey_proxy: TcpProxy) -> dict[str, Any]:
    valkey_db = stores.valkey_url.rsplit("/", 1)[-1]
    return {
        "valkey_url": f"redis://127.0.0.1:{valkey_proxy.port}/{valkey_db}",
        "rate_limit_enabled": True,
        "rate_limit_read": 2,
        # Ask Valkey again on every request once it failed (the default waits 2 s).
        "rate_limit_fail_open_retry_s": 0.0,
    }


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def limiter_log() -> Iterator[Records]:
    records = Records()
    logger = logging.getLogger("myashes.ratelimit")
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)


def fail_open_total() -> float:
    return REGISTRY.get_sample_value("myashes_rate_limit_fail_open_total") or 0.0


async def test_valkey_down_fails_open_then_limits_return(
    client: httpx.AsyncClient, valkey_proxy: TcpProxy, limiter_log: Records
) -> None:
    session = headers(new_session())
    first = await client.get(f"{API}/builds", headers=session)
    assert (first.status_code, first.headers["X-RateLimit-Remaining"]) == (200, "1")

    valkey_proxy.cut()
    before = fail_open_total()
    for _ in range(5):  # well over the limit of 2: let through, unchecked
        response = await client.get(f"{API}/builds", headers=session)
        assert response.status_code == 200, response.text
        assert "X-RateLimit-Limit" not in response.headers
    assert fail_open_total() == before + 5
    assert REGISTRY.get_sample_value("myashes_rate_limit_enforced") == 0
    health = (await client.get("/health")).json()
    assert (health["status"], health["checks"]["rate_limits"]["enforced"]) == ("degraded", False)
    assert health["checks"]["rate_limits"]["error"].startswith("Valkey unreachable")
    warnings = [m for m in limiter_log.messages if "fail open" in m]
    assert len(warnings) == 1, limiter_log.messages  # once per interval, not per request
    assert session["X-Session-ID"] not in "".join(limiter_log.messages)

    valkey_proxy.restore()
    back = await client.get(f"{API}/builds", headers=session)
    # The count from before the outage is still there: this is the 2nd hit of 2.
    assert (back.status_code, back.headers["X-RateLimit-Remaining"]) == (200, "0")
    assert (await client.get(f"{API}/builds", headers=session)).status_code == 429
    assert "rate limits enforced again: Valkey answers" in limiter_log.messages
    assert REGISTRY.get_sample_value("myashes_rate_limit_enforced") == 1


async def test_valkey_down_at_start_fails_open(
    valkey_proxy: TcpProxy, stores: Stores, settings_overrides: dict[str, Any]
) -> None:
    """A worker that starts while Valkey is down serves, unlimited, until Valkey is back."""
    valkey_proxy.cut()
    app = create_app(make_settings(stores, **settings_overrides))
    async with serving(app) as client:
        statuses = {(await client.get(f"{API}/builds/templates")).status_code for _ in range(4)}
        assert statuses == {200}
        valkey_proxy.restore()
        limited = await client.get(f"{API}/builds/templates")
        assert limited.headers["X-RateLimit-Limit"] == "10"  # per IP: 2 x 5
