"""A real Prometheus (Debian's package, installed when missing) scraping the real server
(`python -m service run`, 2 workers, rate limits on) every second under a short mixed load:
every dashboard panel query returns data, the alert rules load and evaluate cleanly, and no
alert was pending or firing at any point of the run. Slow (~1 min), run by `make check`/CI.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import Stores, clean_stores
from tests.factories import API, build_body, headers, new_session
from tests.prometheus import PrometheusServer, alert_names, panel_queries, template_queries
from tests.server import ServerProcess

NAMESPACE = "myashes-backend"
# What the Prometheus Operator adds to every series it scrapes through the ServiceMonitor.
TARGET_LABELS = {"namespace": NAMESPACE, "service": "myashes-backend", "pod": "myashes-backend-0"}
LOAD_S = 25.0
USERS = 6
RATE_INTERVAL = "15s"  # Grafana's $__rate_interval for a 1 s scrape, inside the load window
QUERIES = ("tank build", "healer", "bard support", "fighter dps", "mage aoe", "rogue")
# Every limit out of the way except feedback (5/min per session: a few 429s). Each user comes
# from its own network through a trusted proxy (X-Forwarded-For), as real clients do.
LIMITS = {
    "RATE_LIMIT_ENABLED": "true",
    "TRUSTED_PROXIES": "127.0.0.0/8",
    "RATE_LIMIT_BUILD_CREATE": "100000",
    "RATE_LIMIT_VOTE": "100000",
    "RATE_LIMIT_ANALYTICS": "100000",
    "RATE_LIMIT_READ": "100000",
    "RATE_LIMIT_FEEDBACK": "5",
}


async def user(client: httpx.AsyncClient, number: int, builds: list[str], until: float) -> Counter:
    """One client's mixed traffic until `until`: searches, reads, votes, creates, edits,
    feedback, a few 404s and 422s. Returns its statuses."""
    statuses: Counter[int] = Counter()
    session = new_session()
    rng = random.Random(number)
    network = {"X-Forwarded-For": f"10.0.{number}.1"}

    async def send(
        method: str,
        path: str,
        session: str | None = None,
        via: dict[str, str] = network,
        **kwargs: object,
    ) -> httpx.Response:
        sent = {**via, **(headers(session) if session else {})}
        r = await client.request(method, f"{API}{path}", headers=sent, **kwargs)
        statuses[r.status_code] += 1
        return r

    own = await send("POST", "/builds", session, json=build_body(name=f"Load {number}"))
    builds.append(own.json()["build_id"])
    own_id = builds[-1]
    for step in itertools.count():
        if time.monotonic() >= until:
            return statuses
        query, mode = rng.choice(QUERIES), ("quick", "smart", "deep")[step % 3]
        search = {"query": query, "search_mode": mode, "result_count": step % 7}
        await send("POST", "/analytics/search", session, json=search)
        await send("GET", "/builds", params={"limit": 10})
        await send("GET", f"/builds/{rng.choice(builds)}")
        if step % 2 == 0:
            # A fresh voter from a network of its own: one network's votes on a build are
            # capped at 10 a day (429), which a faster machine would reach within the run.
            vote = {"rating": rng.randint(1, 5)}
            voter = {"X-Forwarded-For": f"10.{100 + number}.{step % 250}.1"}
            await send(
                "POST", f"/builds/{rng.choice(builds)}/vote", new_session(), voter, json=vote
            )
        if step % 3 == 0:
            await send("GET", "/builds/popular")
            await send("GET", "/analytics/popular-queries")
        if step % 5 == 0:
            await send("GET", "/builds/b_00000000")  # 404
            await send("POST", "/analytics/search", json={"query": query})  # 422
        if step % 10 == 0:
            edit = {"description": f"v{step}"}
            await send("PATCH", f"/builds/{own_id}", session, json=edit)
        if step % 8 == 0:
            feedback = {"query": query, "response_snippet": "a", "search_mode": mode}
            feedback["rating"] = "up"
            await send("POST", "/feedback", session, json=feedback)
        if step % 10 == 5:
            body = build_body(name=f"Load {number}.{step}")
            await send("POST", "/builds", session, json=body)
            await send("GET", "/builds/templates")


async def mixed_load(base_url: str, seconds: float) -> Counter:
    # A new connection per request: the kernel spreads them over both workers.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        builds: list[str] = []
        until = time.monotonic() + seconds
        results = await asyncio.gather(*(user(client, n, builds, until) for n in range(USERS)))
    return sum(results, Counter())


@pytest.mark.server
@pytest.mark.timeout(400)
async def test_every_panel_has_data_and_no_alert_pends_under_mixed_load(
    stores: Stores, tmp_path: Path
) -> None:
    await clean_stores(stores)
    server = ServerProcess(
        stores.database_url, stores.valkey_url, workers=2, FLUSH_INTERVAL_S="1", **LIMITS
    )
    await asyncio.to_thread(server.start)
    prometheus = PrometheusServer(
        tmp_path, f"127.0.0.1:{server.port}", TARGET_LABELS, interval="1s"
    )
    try:
        await asyncio.to_thread(prometheus.start)
        await until(lambda: prometheus.query("up == 1", time.time()), "no successful scrape")
        # Until its first scrape Prometheus rightly finds no target (MyAshesApiAbsent pends):
        # the run is watched from the first rule evaluation that saw the server.
        started = time.time()
        await until(lambda: evaluated_after(prometheus, started), "rules not evaluated")
        statuses = await mixed_load(server.base_url, LOAD_S)
        ended = time.time()
        # Scraped and evaluated past the end of the load.
        await until(lambda: prometheus.query(f"timestamp(up) > {ended + 2}", time.time()), "stale")
        await until(lambda: evaluated_after(prometheus, ended + 2), "rules not evaluated")

        assert sum(statuses.values()) > 300, statuses
        assert not [s for s in statuses if s >= 500], statuses
        assert statuses[429] < 0.1 * sum(statuses.values()), statuses

        # What Prometheus holds is what the clients saw: every API request once, no scrape or
        # probe among them (Prometheus scraped ~50 times meanwhile), every 429 by the limiter.
        def total(expr: str) -> float:
            selector = f'{expr}{{namespace="{NAMESPACE}"}}'
            (sample,) = prometheus.query(f"sum({selector})", time.time())
            return float(sample["value"][1])

        assert total("myashes_http_requests_total") == sum(statuses.values())
        assert total("myashes_rate_limited_total") == statuses[429]

        table: dict[str, bool] = {}
        empty = []
        for q in panel_queries(NAMESPACE, RATE_INTERVAL):
            has_data = bool(prometheus.query(q.expr, ended))
            table[q.panel] = table.get(q.panel, True) and has_data
            if not has_data:
                empty.append(f"{q.panel} [{q.legend}]: {q.expr}")
        print("\npanel -> data")  # the table for the report (`pytest -s`)
        for panel, has_data in table.items():
            print(f"| {panel} | {'yes' if has_data else 'no'} |")
        print(f"statuses: {dict(sorted(statuses.items()))}")
        assert len(table) >= 20
        assert not empty, "panels without data:\n" + "\n".join(empty)
        for definition in template_queries():  # label_values(metric, label)
            metric, label = definition.removeprefix("label_values(").rstrip(")").split(", ")
            values = prometheus.api(f"label/{label}/values", **{"match[]": metric})
            assert NAMESPACE in values, definition

        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        assert sorted(r["name"] for r in rules) == sorted(alert_names())
        assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
        assert prometheus.api("alerts")["alerts"] == []
        # ALERTS holds a series for every pending or firing alert: none during the whole run.
        window = int(time.time() - started)
        assert prometheus.query(f"max_over_time(ALERTS[{window}s])", time.time()) == []
    finally:
        prometheus.stop()
        server.terminate()
        await asyncio.to_thread(server.wait, 60)


def evaluated_after(prometheus: PrometheusServer, at: float) -> bool:
    groups = prometheus.api("rules")["groups"]
    return all(epoch(r["lastEvaluation"]) > at for g in groups for r in g["rules"])


def epoch(rfc3339: str) -> float:
    """Seconds since the epoch of an RFC 3339 time as Prometheus' API writes them (Go's
    RFC3339Nano: 0-9 fraction digits)."""
    match = re.fullmatch(r"(.+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", rfc3339)
    assert match, rfc3339
    zone = "+00:00" if match[3] == "Z" else match[3]
    return datetime.fromisoformat(match[1] + zone).timestamp() + float(f"0.{match[2] or 0}")


async def until(check: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.5)
