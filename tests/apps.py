"""Serve an app a test built itself (extra test-only routes, custom settings) over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager

from service.ctx import App


@asynccontextmanager
async def serving(application: App) -> AsyncIterator[httpx.AsyncClient]:
    """Start `application` through its ASGI lifespan and yield a client talking to it."""
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
