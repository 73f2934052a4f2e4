"""Capture and measure for bench/plans.py: the SQL as the service sends it (Tortoise calls
recorded, aggregators run against a recording stand-in inside a rolled-back transaction),
EXPLAIN (ANALYZE, BUFFERS), and repeated timings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from aggregators import search, votes
from bench.drills.load import percentile
from bench.plans_seed import BUILDS, WORDS

Row = dict[str, Any]


class Recorder:
    """Wraps the Tortoise client's query methods to capture (sql, values) as executed."""

    def __init__(self) -> None:
        from tortoise import connections

        self.client = connections.get("default")
        self.statements: list[tuple[str, list[Any]]] = []
        for name in ("execute_query", "execute_query_dict"):
            original = getattr(self.client, name)

            async def recorded(
                query: str, values: list[Any] | None = None, _o: Any = original
            ) -> Any:
                self.statements.append((query, list(values or [])))
                return await _o(query, values)

            setattr(self.client, name, recorded)

    async def capture(self, make: Any) -> list[tuple[str, list[Any]]]:
        self.statements = []
        await make()
        return list(self.statements)


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += _nodes(child)
    return out


def summarize(plan_json: list[dict[str, Any]]) -> tuple[str, bool, float]:
    """(scan summary, any seq scan on a big table, execution ms) from EXPLAIN JSON."""
    top = plan_json[0]
    scans, seq = [], False
    for node in _nodes(top["Plan"]):
        kind = node["Node Type"]
        if "Scan" not in kind or kind in ("Subquery Scan", "Function Scan", "CTE Scan"):
            continue
        where = node.get("Index Name") or node.get("Relation Name") or ""
        direction = " Backward" if node.get("Scan Direction") == "Backward" else ""
        scans.append(f"{kind}{direction} {where}".strip())
        if kind == "Seq Scan" and node.get("Relation Name") not in (None, "plans_classes"):
            seq = True
    return "; ".join(dict.fromkeys(scans)), seq, float(top["Execution Time"])


async def explain(
    conn: asyncpg.Connection,
    sql: str,
    values: list[Any],
    *,
    rollback: bool,
    setup: str | None = None,
) -> tuple[Any, str]:
    """EXPLAIN ANALYZE as JSON (parsed) and as text; each in its own rolled-back transaction
    when `rollback` (a write must not see the rows of the previous EXPLAIN ANALYZE) or
    `setup` (SET LOCAL statements the service sends first, e.g. a search's)."""
    out = []
    for options in ("ANALYZE, BUFFERS, FORMAT JSON", "ANALYZE, BUFFERS"):
        tx = conn.transaction()
        if rollback or setup:
            await tx.start()
        try:
            if setup:
                await conn.execute(setup)
            out.append(await conn.fetch(f"EXPLAIN ({options}) {sql}", *values))
        finally:
            if rollback or setup:
                await tx.rollback()
    return json.loads(out[0][0][0]), "\n".join(r[0] for r in out[1])


async def timed(make: Any, runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await make()
        samples.append((time.perf_counter() - started) * 1000)
    return percentile(samples, 50), percentile(samples, 99)


Row = dict[str, Any]


async def measure(
    conn: asyncpg.Connection,
    rows: list[Row],
    group: str,
    label: str,
    statements: list[tuple[str, list[Any]]],
    make: Any | None,
    runs: int,
    rollback: bool = False,
    setup: str | None = None,
) -> None:
    """EXPLAIN each statement (after `setup`); time `make` (or the statements, prepared)
    `runs` times."""
    plans, scans, seq, exec_each = [], [], False, []
    for sql, values in statements:
        plan_json, text = await explain(conn, sql, values, rollback=rollback, setup=setup)
        summary, has_seq, ms = summarize(plan_json)
        scans.append(summary)
        seq |= has_seq
        exec_each.append(ms)
        first = f"{setup};\n" if setup else ""
        plans.append(f"-- {label}\n{first}{sql.strip()}\n-- values: {values!r}\n{text}")

    async def run_statements() -> None:
        if rollback:
            async with conn.transaction():
                for sql, values in statements:
                    await conn.fetch(sql, *values)
                raise _Rollback
        for sql, values in statements:
            await conn.fetch(sql, *values)

    async def guarded() -> None:
        with contextlib.suppress(_Rollback):
            await (make or run_statements)()

    exec_ms = sum(exec_each)
    if exec_ms > 1000:  # seconds per run: a few runs tell enough
        runs = min(runs, 3)
    p50, p99 = await timed(guarded, runs) if runs else (float("nan"), float("nan"))
    rows.append(
        dict(
            group=group,
            label=label,
            scans=scans,
            seq=seq,
            exec_ms=exec_ms,
            exec_each=exec_each,
            p50=p50,
            p99=p99,
            runs=runs,
            plans=plans,
        )
    )
    flag = " SEQ" if seq else ""
    print(f"  {label:58s} exec {exec_ms:8.2f} ms  p50 {p50:8.2f}  p99 {p99:8.2f}{flag}", flush=True)


def rejected(rows: list[Row], group: str, label: str, why: str) -> None:
    """A case the API refuses before any SQL (422): a row without a plan."""
    rows.append(
        dict(
            group=group,
            label=f"{label}: rejected 422 ({why})",
            scans=["none (no SQL)"],
            seq=False,
            exec_ms=0.0,
            exec_each=[],
            p50=0.0,
            p99=0.0,
            runs=0,
            plans=[f"-- {label}\n-- rejected before any SQL: {why}"],
        )
    )
    print(f"  {label:58s} rejected 422: {why}", flush=True)


async def timed_out(rows: list[Row], group: str, label: str, make: Any, runs: int = 3) -> None:
    """A case whose statement hit the search timeout: how long the API takes to say 503."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        with contextlib.suppress(Exception):  # ServiceUnavailable: the 503
            await make()
        samples.append((time.perf_counter() - started) * 1000)
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    rows.append(
        dict(
            group=group,
            label=f"{label}: statement timeout -> 503",
            scans=["(cancelled at the search statement timeout)"],
            seq=False,
            exec_ms=p50,
            exec_each=[],
            p50=p50,
            p99=p99,
            runs=runs,
            plans=[f"-- {label}\n-- cancelled by statement_timeout: the API answered 503"],
        )
    )
    print(f"  {label:58s} timeout -> 503 after p50 {p50:8.2f} ms", flush=True)


class _Rollback(Exception):
    pass


def first_line(sql: str) -> str:
    return " ".join(sql.split())[:60]


class _NoValkey:
    """Projections fail as if Valkey were down (deferred, healed from Postgres: also captured)."""

    def pipeline(self, **_: Any) -> Any:
        raise RedisError("plans: no Valkey")

    def register_script(self, _: str) -> Any:
        async def run(*_: Any, **__: Any) -> Any:
            raise RedisError("plans: no Valkey")

        return run


class _Capture:
    """Stands in for the Tortoise client an aggregator gets: its statements run on `conn`
    (inside a transaction the caller rolls back) and are recorded as sent."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, list[Any]]] = []

    @contextlib.asynccontextmanager
    async def acquire_connection(self) -> AsyncIterator[Any]:
        yield _RecordingConnection(self)

    async def execute_query_dict(self, sql: str, values: list[Any] | None = None) -> list[Row]:
        self.statements.append((sql, list(values or [])))
        return [dict(r) for r in await self.conn.fetch(sql, *(values or []))]


class _RecordingConnection:
    def __init__(self, capture: _Capture) -> None:
        self._capture = capture

    def transaction(self) -> Any:
        return self._capture.conn.transaction()  # a savepoint inside the caller's transaction

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._capture.conn, name)

        async def call(first: Any, *args: Any, **kwargs: Any) -> Any:
            if name in ("fetch", "fetchval", "fetchrow", "execute") and isinstance(first, str):
                self._capture.statements.append((first, list(args)))
            return await method(first, *args, **kwargs)  # COPY runs, but has no plan

        return call


async def capture_votes(
    conn: asyncpg.Connection, rng: random.Random
) -> list[tuple[str, list[Any]]]:
    capture = _Capture(conn)
    aggregator = votes.VoteAggregator(capture, _NoValkey(), max_batch=500)  # type: ignore[arg-type]
    tx = conn.transaction()
    await tx.start()
    try:
        waiters = [
            asyncio.ensure_future(
                aggregator.submit(
                    f"b_{1 + int(BUILDS * rng.random() ** 3):08x}",
                    f"sess_{rng.randrange(16**24):024x}",
                    rng.randint(1, 5),
                    None,
                    f"10.{rng.randrange(78)}.{rng.randrange(256)}.0/24",
                )
            )
            for _ in range(200)
        ]
        await asyncio.sleep(0)
        await aggregator.flush()
        await asyncio.gather(*waiters, return_exceptions=True)
    finally:
        await tx.rollback()
    return capture.statements


async def capture_search_flush(
    conn: asyncpg.Connection, rng: random.Random
) -> list[tuple[str, list[Any]]]:
    capture = _Capture(conn)
    aggregator = search.SearchAggregator(
        capture,
        interval_s=3600,
        max_events=20_000,
        max_bytes=2**31,  # type: ignore[arg-type]
    )
    now = time.time()
    words = " ".join(WORDS).split()
    for i in range(10_000):
        query = " ".join(words[(i * 7 + k) % len(words)] for k in range(1 + i % 3))
        aggregator.record(
            search.SearchEvent(query, query, "quick", 1, f"sess_{rng.randrange(3000):024x}", now)
        )
    tx = conn.transaction()
    await tx.start()
    try:
        await aggregator.flush()
    finally:
        await tx.rollback()
    return capture.statements
