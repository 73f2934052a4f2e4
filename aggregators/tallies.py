"""Tally reconciliation: recount builds.rating_sum/vote_count from build_votes, report and
repair drift (`python -m service reconcile-tallies`, and a periodic check run by one worker
per cluster under a Valkey lease). Off the request path; imports nothing of the service.

Votes add to the tallies under the build's row lock (aggregators/votes.py), so drift must be
0; this is where a recount, O(votes of a build), belongs. Detection reads each chunk of
builds and their votes in ONE statement, so the builds row and its votes come from the same
snapshot (a vote batch commits both at once): no false positive under load. Repair locks the
drifted builds (sorted id order, like every vote writer) and recounts them in a later
statement of the same transaction, whose snapshot sees every vote committed before the lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError
from tortoise.backends.base.client import BaseDBAsyncClient

from aggregators import keys
from aggregators.tasks import cancel_and_wait
from aggregators.votes import project_tallies

log = logging.getLogger("myashes.aggregators.tallies")
CHUNK = 2000  # builds per detection statement
STATEMENT_TIMEOUT_S = 60.0

# Builds after $1 in id order, $2 of them, with their stored and recounted tallies.
_CHECK_SQL = """
WITH chunk AS (
    SELECT build_id, rating_sum, vote_count FROM builds
    WHERE build_id > $1 ORDER BY build_id LIMIT $2
)
SELECT c.build_id, c.rating_sum, c.vote_count,
       t.rating_sum AS true_rating_sum, t.vote_count AS true_vote_count
FROM chunk c CROSS JOIN LATERAL (
    SELECT coalesce(sum(v.rating), 0)::int AS rating_sum, count(*)::int AS vote_count
    FROM build_votes v WHERE v.build_id = c.build_id
) t
ORDER BY c.build_id
"""
_LOCK_SQL = """
SELECT build_id FROM builds WHERE build_id = ANY($1::text[])
ORDER BY build_id FOR NO KEY UPDATE
"""
_REPAIR_SQL = """
UPDATE builds b SET rating_sum = t.rating_sum, vote_count = t.vote_count
FROM builds old, unnest($1::text[]) AS d(build_id) CROSS JOIN LATERAL (
    SELECT coalesce(sum(v.rating), 0)::int AS rating_sum, count(*)::int AS vote_count
    FROM build_votes v WHERE v.build_id = d.build_id
) t
WHERE b.build_id = d.build_id AND old.build_id = d.build_id
  AND (b.rating_sum, b.vote_count) IS DISTINCT FROM (t.rating_sum, t.vote_count)
RETURNING b.build_id, old.rating_sum AS old_rating_sum, old.vote_count AS old_vote_count,
          b.rating_sum, b.vote_count
"""


@dataclass(frozen=True)
class Drift:
    build_id: str
    rating_sum: int  # stored in builds
    vote_count: int
    true_rating_sum: int  # recounted from build_votes
    true_vote_count: int


@dataclass
class Report:
    builds: int = 0  # builds checked
    drifted: list[Drift] = field(default_factory=list)
    repaired: int = 0  # builds whose tallies this run rewrote
    duration_s: float = 0.0

    @property
    def drift(self) -> int:
        return len(self.drifted)

    def line(self) -> str:
        """The one log line of a check."""
        text = (
            f"tally check: {self.builds} builds, drift {self.drift}, repaired {self.repaired} "
            f"in {self.duration_s:.2f}s"
        )
        if self.drifted:
            votes = sum(abs(d.vote_count - d.true_vote_count) for d in self.drifted)
            text += f"; votes off by {votes} in all; e.g. " + ", ".join(
                f"{d.build_id} {d.vote_count}/{d.rating_sum} -> "
                f"{d.true_vote_count}/{d.true_rating_sum}"
                for d in self.drifted[:5]
            )
        return text


async def reconcile(
    db: BaseDBAsyncClient, valkey: Redis | None = None, *, repair: bool = True
) -> Report:
    """Recount every build's tallies from build_votes; with `repair`, rewrite the drifted ones
    under their row locks and project the repaired values to Valkey (rule 6)."""
    started = time.perf_counter()
    report = Report()
    after = ""
    while True:
        async with db.acquire_connection() as conn:
            rows = await conn.fetch(_CHECK_SQL, after, CHUNK, timeout=STATEMENT_TIMEOUT_S)
        if not rows:
            break
        report.builds += len(rows)
        after = rows[-1]["build_id"]
        report.drifted += [
            Drift(
                r["build_id"],
                r["rating_sum"],
                r["vote_count"],
                r["true_rating_sum"],
                r["true_vote_count"],
            )
            for r in rows
            if (r["rating_sum"], r["vote_count"]) != (r["true_rating_sum"], r["true_vote_count"])
        ]
    if repair and report.drifted:
        build_ids = sorted(d.build_id for d in report.drifted)
        async with db.acquire_connection() as conn, conn.transaction():
            await conn.fetch(_LOCK_SQL, build_ids, timeout=STATEMENT_TIMEOUT_S)
            repaired = await conn.fetch(_REPAIR_SQL, build_ids, timeout=STATEMENT_TIMEOUT_S)
        report.repaired = len(repaired)
        if valkey is not None and repaired:
            tallies = {r["build_id"]: (r["rating_sum"], r["vote_count"]) for r in repaired}
            try:
                await project_tallies(valkey, tallies, force=True)  # may lower a count
            except (RedisError, OSError) as exc:  # the next vote on the build projects it
                log.warning("tally repair not projected to Valkey: %s", exc)
    report.duration_s = time.perf_counter() - started
    return report


class PeriodicTallyCheck:
    """Every `interval_s`, the one worker of the cluster that wins the Valkey lease (SET NX
    PX, held for the interval) runs `reconcile` (repairing) in the background."""

    def __init__(
        self,
        db: BaseDBAsyncClient,
        valkey: Redis,
        *,
        interval_s: float,
        on_report: Callable[[Report], None] | None = None,
        owner: str | None = None,
    ) -> None:
        self._db = db
        self._valkey = valkey
        self.interval_s = interval_s
        self.on_report = on_report
        self.owner = owner or f"{os.uname().nodename}:{os.getpid()}:{id(self):x}"
        self._task: asyncio.Task[None] | None = None
        self.runs = 0  # checks this worker ran

    async def run_once(self) -> Report | None:
        """Take the lease and check; None when another worker holds it (or Valkey is down:
        no check rather than a check by every worker)."""
        try:
            won = await self._valkey.set(
                keys.TALLY_CHECK_LEASE, self.owner, nx=True, px=int(self.interval_s * 1000)
            )
        except (RedisError, OSError) as exc:
            log.warning("tally check skipped (Valkey: %s)", exc)
            return None
        if not won:
            return None
        report = await reconcile(self._db, self._valkey, repair=True)
        self.runs += 1
        if report.drift:
            log.error(report.line())
        else:
            log.info(report.line())
        if self.on_report is not None:
            self.on_report(report)
        return report

    async def _run(self) -> None:
        while True:
            # First check one interval after start: a rolling restart does not recount at once.
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except Exception as exc:  # Postgres down: the next interval tries again
                log.warning("tally check failed: %s: %s", type(exc).__name__, exc)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="tally-check")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
