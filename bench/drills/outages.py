"""Store drills: Postgres stopped, Valkey stopped, Postgres slow (a held table lock)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from redis.asyncio import Redis

from aggregators import keys
from bench.drills.common import (
    BUFFER_CAP,
    CONNECTIONS,
    EXIT_BUDGET_S,
    FLUSH_S,
    LOAD_S,
    OUTAGE_S,
    WORKERS,
    DrillResult,
    audit,
    check_exact,
    load_for,
    server_errors,
    start_server,
    stop_server,
    tallies_exact,
    wait_flushed,
)
from bench.drills.load import Tally, latency_ms
from bench.drills.stores import DrillStores

SLOW_BUFFER_CAP = 100_000  # the production default of SEARCH_BUFFER_MAX_EVENTS
RECOVERY_MAX_S = 90.0  # flush retries back off up to aggregators.base.MAX_BACKOFF_S (30 s)
LOCK_SQL = "LOCK TABLE search_events, search_rollups IN EXCLUSIVE MODE"  # reads still pass


def _statuses_between(tally: Tally, start: float, end: float) -> dict[int, int]:
    """Status counts of requests that *started* in [start, end)."""
    counts: dict[int, int] = {}
    for (started, _), status in zip(tally.latencies, tally.status_log, strict=True):
        if start <= started < end:
            counts[status] = counts.get(status, 0) + 1
    return counts


def _fmt(counts: dict[int, int]) -> str:
    return ", ".join(f"{s}: {n}" for s, n in sorted(counts.items())) or "none"


async def postgres_down(stores: DrillStores) -> DrillResult:
    result = DrillResult(f"Postgres stopped {OUTAGE_S:g} s under load")
    result.say(f"fault: {stores.mode}")
    build_ids = await stores.reset()
    server, pids = await start_server(stores, SEARCH_BUFFER_MAX_EVENTS=BUFFER_CAP)
    load = load_for(server)
    crashed = False
    try:
        load.start(analytics=CONNECTIONS, votes=CONNECTIONS // 6, build_ids=build_ids)
        await asyncio.sleep(LOAD_S)
        down_at = time.monotonic()
        await stores.postgres_down()
        while time.monotonic() - down_at < OUTAGE_S:
            await asyncio.sleep(0.5)
            crashed |= server.process is None or server.process.poll() is not None
        up_at = time.monotonic()
        await stores.postgres_up()
        up_done = time.monotonic()
        # Keep the load on until 503s have stopped for 3 s (the flush retry landed).
        while time.monotonic() - up_at < RECOVERY_MAX_S:
            await asyncio.sleep(0.5)
            last_503 = max((t for t, s in _answers(load.analytics) if s == 503), default=0.0)
            if time.monotonic() - max(last_503, up_done) > 3 + LOAD_S:
                break
        await load.finish()
        flushed_in = await wait_flushed(stores, load, RECOVERY_MAX_S)
        workers_after = await asyncio.to_thread(server.worker_pids)
        crashed |= server.process is None or server.process.poll() is not None
        code, elapsed = await stop_server(server, EXIT_BUDGET_S)
    finally:
        await load.finish()
        server.kill()
    a = load.analytics
    first_503 = a.first_status_at.get(503)
    pre_buffered = a.acked_between(down_at - 2 * FLUSH_S, down_at)
    acked_before_first_503 = a.acked_between(down_at, first_503 or float("inf"))
    last_503 = max((t for t, s in _answers(a) if s == 503), default=None)
    result.say(
        f"Postgres down at t=0 for {OUTAGE_S:g} s (stop took {up_at - down_at - OUTAGE_S:+.1f} s "
        f"extra), start took {up_done - up_at:.1f} s; buffer cap {BUFFER_CAP} per worker x "
        f"{WORKERS} workers"
    )
    if first_503 is not None:
        result.say(
            f"first 503 at t={first_503 - down_at:.1f} s after {acked_before_first_503} events "
            f"were acked during the outage (+ up to {pre_buffered} buffered before it); last "
            f"503 at t={(last_503 or 0) - down_at:.1f} s = {(last_503 or 0) - up_at:.1f} s "
            "after Postgres was back"
        )
    else:
        result.say(f"no 503: the cap ({BUFFER_CAP}/worker) was not reached in {OUTAGE_S:g} s")
    result.say(
        "analytics answers before / during / after the outage: "
        f"{_fmt(_statuses_between(a, 0, down_at))} / "
        f"{_fmt(_statuses_between(a, down_at, up_at))} / "
        f"{_fmt(_statuses_between(a, up_at, float('inf')))}"
    )
    result.say(
        f"votes answers during the outage: {_fmt(_statuses_between(load.votes, down_at, up_at))}"
    )
    result.say(
        f"all acked events in Postgres {flushed_in:.1f} s after the load stopped; workers "
        f"{pids} -> {workers_after}; final SIGTERM exit {code} in {elapsed:.1f} s"
    )
    numbers = await audit(result, stores, load)
    result.numbers.update(
        first_503_s=None if first_503 is None else round(first_503 - down_at, 2),
        acked_during_outage_before_first_503=acked_before_first_503,
        last_503_after_up_s=None if last_503 is None else round(last_503 - up_at, 2),
        exit_code=code,
    )
    result.check(
        "no crash: main process and both workers alive throughout",
        not crashed and sorted(workers_after) == sorted(pids),
    )
    result.check("no 5xx other than 503", not server_errors(result, load, down_at))
    result.check("no 503 before the outage", 503 not in _statuses_between(a, 0, down_at))
    result.check(
        f"503s only after a buffer filled (>= cap {BUFFER_CAP} - {pre_buffered} pre-buffered "
        "acked during the outage first)",
        first_503 is None or acked_before_first_503 >= BUFFER_CAP - pre_buffered,
    )
    check_exact(result, numbers)
    return result


def _answers(tally: Tally) -> list[tuple[float, int]]:
    return [(t + dt, s) for (t, dt), s in zip(tally.latencies, tally.status_log, strict=True)]


async def valkey_down(stores: DrillStores) -> DrillResult:
    result = DrillResult(f"Valkey stopped {OUTAGE_S:g} s under load")
    result.say(f"fault: {stores.mode}")
    build_ids = await stores.reset()
    high = 10_000_000
    server, pids = await start_server(
        stores,
        RATE_LIMIT_ENABLED="true",
        TRUSTED_PROXIES="127.0.0.0/8",  # each vote from its own network (X-Forwarded-For)
        RATE_LIMIT_BUILD_CREATE=high,
        RATE_LIMIT_VOTE=high,
        RATE_LIMIT_FEEDBACK=high,
        RATE_LIMIT_ANALYTICS=high,
        RATE_LIMIT_READ=high,
    )
    load = load_for(server)
    valkey = stores.valkey()
    try:
        load.start(
            analytics=CONNECTIONS // 3,
            votes=CONNECTIONS // 6,
            reads=CONNECTIONS // 3,
            build_ids=build_ids,
        )
        await asyncio.sleep(LOAD_S)
        popular_before = await valkey.exists(keys.popular_queries(7, None))
        down_at = time.monotonic()
        await stores.valkey_down()
        await asyncio.sleep(OUTAGE_S)
        up_at = time.monotonic()
        await stores.valkey_up()
        await valkey.aclose()  # its pooled connection died with the server
        valkey = stores.valkey()
        await asyncio.sleep(LOAD_S)
        await load.finish()
        # Heal: every build voted since the outage began must carry Postgres' tallies again.
        must_heal = load.voted_since(down_at)
        healed_in, mismatched, missing_other = await _wait_ratings(stores, valkey, must_heal, 20.0)
        popular_miss = await valkey.exists(keys.popular_queries(7, None))
        status = await asyncio.to_thread(_get, server.base_url, "/api/v1/analytics/popular-queries")
        popular_after = await valkey.exists(keys.popular_queries(7, None))
        workers_after = await asyncio.to_thread(server.worker_pids)
        code, elapsed = await stop_server(server, EXIT_BUDGET_S)
    finally:
        await load.finish()
        server.kill()
        await valkey.aclose()
    during = {
        name: _statuses_between(tally, down_at, up_at)
        for name, tally in (
            ("reads", load.reads),
            ("votes", load.votes),
            ("analytics", load.analytics),
        )
    }
    r50b, r99b, _ = latency_ms(load.reads, down_at - LOAD_S + 1, down_at)
    r50d, r99d, n = latency_ms(load.reads, down_at, up_at)
    limiter = load.reads.rate_limit_headers or load.analytics.rate_limit_headers
    result.say(
        "answers during the outage: "
        + "; ".join(f"{name} {_fmt(counts)}" for name, counts in during.items())
    )
    result.say(
        f"reads (popular-queries, list, popular builds, one build) p50/p99 before "
        f"{r50b:.1f}/{r99b:.1f} ms, during {r50d:.1f}/{r99d:.1f} ms ({n} reads)"
    )
    for route, tally in load.reads_by_route.items():
        b50, b99, bn = latency_ms(tally, down_at - LOAD_S + 1, down_at)
        d50, d99, dn = latency_ms(tally, down_at, up_at)
        result.say(
            f"  {route}: p50/p99 before {b50:.1f}/{b99:.1f} ms ({bn}), during "
            f"{d50:.1f}/{d99:.1f} ms ({dn})"
        )
    result.say(
        "rate limiter: "
        + (
            "active (X-RateLimit-* headers seen) with RATE_LIMIT_ENABLED=true"
            if limiter
            else "no X-RateLimit-* headers seen: limiter absent or not on these routes"
        )
    )
    result.say(
        f"popular-queries key before the outage: {bool(popular_before)}; after recovery and "
        f"{LOAD_S:g} s of reads: {bool(popular_miss)}; after one more GET ({status}): "
        f"{bool(popular_after)}"
    )
    result.say(
        f"rating hashes of the {len(must_heal)} builds voted since the outage began equal "
        f"Postgres after {healed_in:.1f} s ({mismatched} still differing); builds voted only "
        f"before it whose hash is gone: {missing_other}"
    )
    await audit(result, stores, load)
    result.numbers.update(
        reads_p99_before_ms=round(r99b, 2),
        reads_p99_during_ms=round(r99d, 2),
        limiter_seen=limiter,
        rating_heal_s=round(healed_in, 2),
        exit_code=code,
        exit_s=round(elapsed, 2),
        workers=pids,
    )
    result.check(
        "every read, vote and analytics request answered 2xx during the outage (fails open)",
        all(s < 300 for counts in during.values() for s in counts),
    )
    result.check("no crash: both workers alive throughout", workers_after == pids)
    result.check("rating projections healed (hash == Postgres tallies)", mismatched == 0)
    result.check("popular-queries set rebuilt after recovery", bool(popular_after))
    result.check("every acknowledged vote persisted", result.numbers["votes_lost"] == 0)
    tallies_exact(result, result.numbers)
    return result


def _get(base_url: str, path: str) -> int:
    import httpx

    return httpx.get(base_url + path, timeout=10).status_code


async def _wait_ratings(
    stores: DrillStores, valkey: Redis, must_heal: set[str], timeout_s: float
) -> tuple[float, int, int]:
    """(seconds until every build in must_heal has Postgres' tallies in Valkey, still
    differing, other voted builds without a rating hash)."""
    started = time.monotonic()
    while True:
        rows = await stores.fetch(
            "SELECT build_id, rating_sum, vote_count FROM builds WHERE vote_count > 0"
        )
        mismatched = missing_other = 0
        for row in rows:
            got = await valkey.hgetall(keys.rating(row["build_id"]))
            want = {"rating_sum": str(row["rating_sum"]), "vote_count": str(row["vote_count"])}
            if row["build_id"] in must_heal:
                mismatched += got != want
            else:
                missing_other += not got
        if mismatched == 0 or time.monotonic() - started > timeout_s:
            return time.monotonic() - started, mismatched, missing_other
        await asyncio.sleep(0.5)


async def slow_postgres(stores: DrillStores) -> DrillResult:
    result = DrillResult(f"slow Postgres ({OUTAGE_S:g} s table lock held on the flush's tables)")
    await stores.reset()
    server, _ = await start_server(stores, SEARCH_BUFFER_MAX_EVENTS=SLOW_BUFFER_CAP)
    load = load_for(server)
    lock = await asyncpg.connect(stores.admin_database_url)
    try:
        load.start(analytics=CONNECTIONS // 2)
        await asyncio.sleep(LOAD_S + 1)
        tx = lock.transaction()
        await tx.start()
        await lock.execute(LOCK_SQL)
        locked_at = time.monotonic()
        rows_at_lock = (await stores.fetch("SELECT count(*) FROM search_events"))[0][0]
        await asyncio.sleep(OUTAGE_S)
        rows_before_release = (await stores.fetch("SELECT count(*) FROM search_events"))[0][0]
        alive_at_release = server.process is not None and server.process.poll() is None
        await tx.rollback()
        released_at = time.monotonic()
        await asyncio.sleep(LOAD_S)
        alive_after = server.process is not None and server.process.poll() is None
        await load.finish()
        await wait_flushed(stores, load, RECOVERY_MAX_S)
        code, elapsed = await stop_server(server, EXIT_BUDGET_S)
    finally:
        await load.finish()
        server.kill()
        await lock.close()
    a = load.analytics
    # Latency of the accepted events (201); 503s (buffer full) are answered without work.
    before = latency_ms(a, locked_at - LOAD_S, locked_at, 201)
    during = latency_ms(a, locked_at, released_at, 201)
    after = latency_ms(a, released_at, released_at + LOAD_S, 201)
    first_503 = a.first_status_at.get(503)
    for label, (p50, p99, n) in (("before", before), ("during", during), ("after", after)):
        seconds = LOAD_S if label != "during" else released_at - locked_at
        result.say(
            f"POST /analytics/search {label:6s}: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
            f"({n / seconds:,.0f} req/s)"
        )
    result.say(
        f"rows flushed while the lock was held: {rows_before_release - rows_at_lock} "
        "(0 = every flush was blocked)"
    )
    result.say(
        f"server alive at release: {alive_at_release}, {LOAD_S:g} s later: {alive_after}; "
        f"SIGTERM exit {code} in {elapsed:.1f} s"
    )
    if not alive_after:
        result.say("server log tail: " + server.log()[-1500:])
    numbers = await audit(result, stores, load)
    result.numbers.update(
        p50_before_ms=round(before[0], 2),
        p99_before_ms=round(before[1], 2),
        p50_during_ms=round(during[0], 2),
        p99_during_ms=round(during[1], 2),
        p50_after_ms=round(after[0], 2),
        p99_after_ms=round(after[1], 2),
        exit_code=code,
    )
    result.check("Postgres was really blocked", rows_before_release == rows_at_lock)
    result.check("the server stayed up", alive_at_release and alive_after)
    result.check(
        "buffered POST latency unaffected (p99 during <= max(2x before, before + 10 ms))",
        during[1] <= max(2 * before[1], before[1] + 10),
    )
    statuses = _statuses_between(a, locked_at, released_at)
    result.say(f"answers while the lock was held: {_fmt(statuses)}")
    if first_503 is not None:
        piled = a.acked_between(locked_at - 2 * FLUSH_S, first_503)
        result.say(
            f"first 503 (a buffer full) {first_503 - locked_at:.1f} s into the lock, after "
            f"{piled:,} events were acked since the last flush before it (cap "
            f"SEARCH_BUFFER_MAX_EVENTS={SLOW_BUFFER_CAP:,} per worker x {WORKERS})"
        )
    result.check("no 5xx other than 503", not server_errors(result, load, locked_at))
    result.check(
        "201 until a buffer reached its cap (503 only after ~cap events per worker)",
        first_503 is None
        or a.acked_between(locked_at - 2 * FLUSH_S, first_503) >= SLOW_BUFFER_CAP * 0.9,
    )
    check_exact(result, numbers)
    return result
