"""Tally reconciliation: `reconcile-tallies` and the periodic check recount builds' tallies from
build_votes, report drift (metric, one log line) and repair it; one worker per cluster."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from aggregators import keys
from aggregators.tallies import PeriodicTallyCheck, reconcile
from tests.factories import create_build, new_session
from tests.scrape import Scrape

API = "/api/v1"


async def vote(client, build_id: str, rating: int) -> None:
    r = await client.post(
        f"{API}/builds/{build_id}/vote",
        json={"rating": rating},
        headers={"X-Session-ID": new_session()},
    )
    assert r.status_code == 200, r.text


async def voted_builds(client) -> list[str]:
    """Three public builds: 3 votes (4+5+3), 2 votes (1+2), none."""
    builds = [
        (await create_build(client, new_session(), is_public=True))["build_id"] for _ in range(3)
    ]
    for rating in (4, 5, 3):
        await vote(client, builds[0], rating)
    for rating in (1, 2):
        await vote(client, builds[1], rating)
    return builds


async def tallies(sql) -> dict[str, tuple[int, int]]:
    rows = await sql.fetch("SELECT build_id, rating_sum, vote_count FROM builds")
    return {r["build_id"]: (r["rating_sum"], r["vote_count"]) for r in rows}


async def drift(sql, builds: list[str]) -> None:
    """Two builds off: one counted 3 votes too many, one lost a vote behind its back."""
    await sql.execute(
        "UPDATE builds SET vote_count = vote_count + 3, rating_sum = rating_sum + 9"
        " WHERE build_id = $1",
        builds[0],
    )
    await sql.execute(
        "DELETE FROM build_votes WHERE id = (SELECT min(id) FROM build_votes WHERE build_id = $1)",
        builds[1],
    )


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Records of the tally check's logger (the service's loggers do not propagate)."""
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    logger = logging.getLogger("myashes.aggregators.tallies")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield got
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def run_command(stores, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": stores.database_url,
        "VALKEY_URL": stores.valkey_url,
        "LOG_LEVEL": "INFO",
    }
    return subprocess.run(
        [sys.executable, "-m", "service", "reconcile-tallies", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def check_lines(stderr: str) -> list[str]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [
        (line["level"], line["msg"])
        for line in lines
        if line.get("logger") == "myashes" and line["msg"].startswith("tally check")
    ]


async def test_reconcile_tallies_reports_with_check_and_repairs_without(
    client, app, sql, valkey, stores
):
    builds = await voted_builds(client)
    await app.ctx.votes.flush()  # Valkey projections written
    await drift(sql, builds)
    drifted = await tallies(sql)
    assert drifted == {builds[0]: (21, 6), builds[1]: (3, 2), builds[2]: (0, 0)}

    done = await asyncio.to_thread(run_command, stores, "--check")
    assert done.returncode == 1, done.stderr
    assert check_lines(done.stderr) == [
        (
            "ERROR",
            f"tally check: 3 builds, drift 2, repaired 0 in {_secs(done.stderr)}s; votes off by 4"
            " in all; e.g. "
            + ", ".join(sorted([f"{builds[0]} 6/21 -> 3/12", f"{builds[1]} 2/3 -> 1/2"])),
        )
    ]
    assert await tallies(sql) == drifted  # report only

    done = await asyncio.to_thread(run_command, stores)
    assert done.returncode == 0, done.stderr
    assert [level for level, _ in check_lines(done.stderr)] == ["ERROR"]
    assert "drift 2, repaired 2" in check_lines(done.stderr)[0][1]
    assert await tallies(sql) == {builds[0]: (12, 3), builds[1]: (2, 1), builds[2]: (0, 0)}
    # The repaired build's Valkey projection carries the recounted values (rule 6).
    assert await valkey.hgetall(keys.rating(builds[1])) == {"rating_sum": "2", "vote_count": "1"}
    assert 0 < await valkey.ttl(keys.rating(builds[1])) <= keys.RATING_TTL_S

    done = await asyncio.to_thread(run_command, stores, "--check")
    assert done.returncode == 0, done.stderr
    assert check_lines(done.stderr) == [
        ("INFO", f"tally check: 3 builds, drift 0, repaired 0 in {_secs(done.stderr)}s")
    ]


def _secs(stderr: str) -> str:
    """The duration the check printed (the only part of its line not known in advance)."""
    for _, msg in check_lines(stderr):
        return msg.split(" in ", 1)[1].split("s", 1)[0]
    raise AssertionError(f"no tally check line in {stderr!r}")


async def test_periodic_check_runs_on_one_worker_reports_metric_and_log_and_repairs(
    client, app, sql, valkey, records
):
    builds = await voted_builds(client)
    await drift(sql, builds)
    other_worker = PeriodicTallyCheck(
        app.ctx.db, app.ctx.valkey, interval_s=3600, on_report=app.ctx.tally_check.on_report
    )

    report = await app.ctx.tally_check.run_once()
    assert report is not None
    assert (report.builds, report.drift, report.repaired) == (3, 2, 2)
    assert await other_worker.run_once() is None  # the lease is held for the interval
    assert other_worker.runs == 0
    assert 3_590_000 < await valkey.pttl(keys.TALLY_CHECK_LEASE) <= 3_600_000
    assert await tallies(sql) == {builds[0]: (12, 3), builds[1]: (2, 1), builds[2]: (0, 0)}
    assert [(r.levelname, r.getMessage().split(" in ")[0]) for r in records] == [
        ("ERROR", "tally check: 3 builds, drift 2, repaired 2")
    ]
    scrape = Scrape.parse((await client.get("/metrics")).text)
    assert scrape.value("myashes_tally_drift") == 2
    assert scrape.value("myashes_tally_last_check_timestamp_seconds") > 0

    await valkey.delete(keys.TALLY_CHECK_LEASE)  # the interval is over
    report = await other_worker.run_once()
    assert report is not None
    assert (report.drift, report.repaired) == (0, 0)
    assert records[-1].levelname == "INFO"
    # Only the worker that ran a check reports it; its gauge wins (most recent).
    scrape = Scrape.parse((await client.get("/metrics")).text)
    assert scrape.value("myashes_tally_drift") == 0


async def test_a_check_under_vote_load_sees_no_drift(client, app, sql):
    """Detection reads a build and its votes in one snapshot: batches committing meanwhile
    never look like drift, and the tallies after the load are exact."""
    builds = [
        (await create_build(client, new_session(), is_public=True))["build_id"] for _ in range(5)
    ]
    votes = [
        asyncio.create_task(app.ctx.votes.submit(builds[i % 5], new_session(), 1 + i % 5))
        for i in range(600)
    ]
    reports = []
    while not all(v.done() for v in votes):
        reports.append(await reconcile(app.ctx.db, repair=False))
        await asyncio.sleep(0)
    assert {r.drift for r in reports} == {0}
    assert len(reports) >= 1
    assert all(v.result().outcome.value == "accepted" for v in votes)
    final = await reconcile(app.ctx.db, repair=False)
    assert (final.builds, final.drift) == (5, 0)
    assert sum(n for _, n in (await tallies(sql)).values()) == 600
