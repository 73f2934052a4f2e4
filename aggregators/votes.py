"""VoteAggregator: group commit of concurrent votes; durable before anyone gets an answer.

Submissions wait on a future. The loop commits everything pending as one transaction:
lock the touched builds in sorted id order, count each (build, source network)'s votes of
the last 24 h (a network past votes_per_network gets NETWORK_LIMITED, answered 429), insert
the votes with their network (ON CONFLICT DO NOTHING RETURNING), recompute
rating_sum/vote_count of those builds from build_votes, commit. Then
each waiter learns its outcome, and Valkey gets the absolute tallies. Nothing is counted
in Python: totals always come from the votes table.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from tortoise.backends.base.client import BaseDBAsyncClient

from aggregators import keys
from aggregators.base import BatchingActor

log = logging.getLogger("myashes.aggregators.votes")
STATEMENT_TIMEOUT_S = 10.0


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    NOT_FOUND = "not_found"  # no such build, or another session's private build
    NETWORK_LIMITED = "network_limited"  # its network's votes on this build in 24 h: full


class VoteNotStored(Exception):
    """The vote's batch did not commit (Postgres unreachable, connection lost mid-batch):
    nothing was confirmed, the client may retry."""


class VoteQueueFull(VoteNotStored):
    """Too many votes waiting for a commit in this worker."""


@dataclass(frozen=True)
class VoteResult:
    outcome: Outcome
    rating_sum: int = 0
    vote_count: int = 0
    retry_after_s: float = 0.0  # NETWORK_LIMITED: until the network's oldest vote ages out


@dataclass
class PendingVote:
    build_id: str
    session_id: str
    rating: int
    future: asyncio.Future[VoteResult] = field(repr=False)
    player_id: str | None = None  # a logged-in voter: one vote per build per player too
    # The voter's client network: at most votes_per_network per build per NETWORK_WINDOW.
    source_network: str | None = None
    queued_at: float = field(default_factory=time.monotonic, repr=False)


NETWORK_WINDOW_S = 24 * 3600
VOTES_PER_NETWORK = 10
# Each (build, network) of the batch: its votes in the window and when the oldest ages out
# (build_votes_network_idx). Exact: the builds are locked, every vote writer locks first.
_NETWORK_SQL = """
SELECT t.build_id, t.net, count(v.*)::int AS n,
       extract(epoch FROM min(v.created_at) + make_interval(secs => $3) - now()) AS wait_s
FROM unnest($1::text[], $2::text[]) AS t(build_id, net)
LEFT JOIN build_votes v ON v.build_id = t.build_id AND v.source_network = t.net
    AND v.created_at > now() - make_interval(secs => $3)
GROUP BY t.build_id, t.net
"""
_LOCK_SQL = """
SELECT build_id, is_public OR is_template AS listed, owner_session, owner_player
FROM builds WHERE build_id = ANY($1::text[])
ORDER BY build_id FOR NO KEY UPDATE
"""
# Insert the batch and recount the touched builds in one statement. The statement's snapshot
# holds every committed vote of these builds (their rows are locked by _LOCK_SQL, and every
# vote writer takes that lock before inserting), but not the rows `ins` adds, so the recount
# is: votes in the table + votes this statement inserted.
_INSERT_AND_RECOUNT_SQL = """
WITH ins AS (
    INSERT INTO build_votes (build_id, session_id, rating, created_at, player_id, source_network)
    SELECT build_id, session_id, rating, now(), player_id, source_network
    FROM unnest($1::text[], $2::text[], $3::int2[], $4::text[], $5::text[])
        AS t(build_id, session_id, rating, player_id, source_network)
    ORDER BY build_id, session_id
    -- no target: a vote that repeats either (build, session) or (build, player) is dropped
    ON CONFLICT DO NOTHING
    RETURNING build_id, session_id, rating
), added AS (
    SELECT build_id, sum(rating)::int AS rating_sum, count(*)::int AS vote_count
    FROM ins GROUP BY build_id
), totals AS (
    -- LATERAL: one index-only scan of build_votes_tally_idx per touched build
    SELECT a.build_id, a.rating_sum + t.rating_sum AS rating_sum,
           a.vote_count + t.vote_count AS vote_count
    FROM added a CROSS JOIN LATERAL (
        SELECT coalesce(sum(v.rating), 0)::int AS rating_sum, count(*)::int AS vote_count
        FROM build_votes v WHERE v.build_id = a.build_id
    ) t
), recount AS (
    UPDATE builds b SET rating_sum = t.rating_sum, vote_count = t.vote_count
    FROM totals t WHERE b.build_id = t.build_id
    RETURNING b.build_id, b.rating_sum, b.vote_count
)
SELECT i.build_id, i.session_id, r.rating_sum, r.vote_count
FROM ins i JOIN recount r USING (build_id)
"""

_TALLIES_SQL = (
    "SELECT build_id, rating_sum, vote_count FROM builds WHERE build_id = ANY($1::text[])"
)


Access = tuple[bool, str | None, str | None]  # listed, owner_session, owner_player


def _may_vote(access: Access | None, vote: PendingVote) -> bool:
    """Public builds and templates for everyone, private builds for their owner only (the
    player for a player's build, the session for an anonymous one)."""
    if access is None:
        return False
    listed, owner_session, owner_player = access
    if listed:
        return True
    if owner_player is not None:
        return owner_player == vote.player_id
    return owner_session == vote.session_id


def _first_votes(votes: list[PendingVote]) -> dict[tuple[str, str], PendingVote]:
    """The first vote per (build, session) and per (build, player); repeats are 409s."""
    first: dict[tuple[str, str], PendingVote] = {}
    players: set[tuple[str, str | None]] = set()
    for vote in votes:
        key, player = (vote.build_id, vote.session_id), (vote.build_id, vote.player_id)
        if key in first or player in players:
            continue
        first[key] = vote
        if vote.player_id is not None:
            players.add(player)
    return first


class VoteAggregator(BatchingActor[PendingVote, list[PendingVote]]):
    name = "votes"

    def __init__(
        self,
        db: BaseDBAsyncClient,
        valkey: Redis,
        *,
        max_batch: int,
        max_pending: int = 100_000,
        max_inflight: int = 2,
        interval_s: float = 1.0,
        votes_per_network: int | None = VOTES_PER_NETWORK,
    ) -> None:
        super().__init__(interval_s=interval_s, max_items=max_pending)
        self._db = db
        self._valkey = valkey
        self.max_batch = max_batch
        self.votes_per_network = votes_per_network
        # Batches committing at once: while one waits on Postgres the next is being built.
        # Safe: every batch locks builds in sorted id order, so they cannot deadlock.
        self.max_inflight = max_inflight
        self._commits: set[asyncio.Task[None]] = set()
        self._committing = 0  # votes in batches being committed
        self._committing_since: list[float] = []  # when the oldest vote of each was queued
        self.statements = 0
        self._unprojected: set[str] = set()  # builds whose Valkey projection failed
        # Newest tallies waiting for Valkey; one projector task drains them in commit order,
        # off the commit path, so the next batch never waits on Valkey.
        self._to_project: dict[str, tuple[int, int]] = {}
        self._projector: asyncio.Task[None] | None = None

    async def submit(
        self,
        build_id: str,
        session_id: str,
        rating: int,
        player_id: str | None = None,
        source_network: str | None = None,
    ) -> VoteResult:
        """Queue a vote and wait until its batch has committed (or failed: raises)."""
        future: asyncio.Future[VoteResult] = asyncio.get_running_loop().create_future()
        vote = PendingVote(build_id, session_id, rating, future, player_id, source_network)
        if not self.add(vote):
            raise VoteQueueFull("vote queue full")
        self._wake()
        return await future

    @property
    def depth(self) -> int:
        return len(self._buffer) + self._committing

    def _make_batch(self, items: list[PendingVote]) -> list[PendingVote]:
        return items

    def _accepted_at(self, item: PendingVote) -> float:
        return item.queued_at

    def _pending_since(self) -> float | None:
        heads = [self._buffer[0].queued_at] if self._buffer else []
        return min(heads + self._committing_since, default=None)

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.interval_s)
            self._wakeup.clear()
            self._dispatch()
            if self._unprojected and not self._commits:
                try:
                    await self._heal()
                except Exception as exc:  # Postgres down: healed on a later tick
                    log.warning("rating projection heal failed: %s", exc)

    def _dispatch(self) -> None:
        """Start commits for pending votes, up to max_inflight batches at once."""
        loop = asyncio.get_running_loop()
        while self._buffer and len(self._commits) < self.max_inflight:
            batch = self._buffer[: self.max_batch]
            del self._buffer[: self.max_batch]
            self._committing += len(batch)
            self._committing_since.append(batch[0].queued_at)
            task = loop.create_task(self._commit(batch))
            self._commits.add(task)
            task.add_done_callback(self._committed)

    def _committed(self, task: asyncio.Task[None]) -> None:
        self._commits.discard(task)
        self._wake()  # votes that arrived meanwhile form the next batch

    async def _commit(self, batch: list[PendingVote]) -> None:
        """One group commit. A failed batch fails its waiters (503), it is never retried:
        a vote is answered only once it is durable, and never silently kept."""
        started = time.perf_counter()
        try:
            await self._write(batch)
        except Exception as exc:
            self.stats.failures += 1
            self._record(time.perf_counter() - started, 0, ok=False)
            log.warning("vote batch of %d failed: %s: %s", len(batch), type(exc).__name__, exc)
            failure = VoteNotStored(f"{type(exc).__name__}: {exc}")
            failure.__cause__ = exc
            for vote in batch:
                if not vote.future.done():
                    vote.future.set_exception(failure)
        else:
            self.stats.flushed += len(batch)
            self.stats.last_success = time.monotonic()
            self._record(time.perf_counter() - started, len(batch), ok=True)
        finally:
            self._committing -= len(batch)
            self._committing_since.remove(batch[0].queued_at)

    async def flush(self) -> int:
        """Commit everything pending and wait for it; then project and heal. Returns the
        number of votes committed by this call's batches."""
        before = self.stats.flushed
        while self._buffer or self._commits:
            self._dispatch()
            if self._commits:
                await asyncio.wait(set(self._commits))
        if self.stats.last_success is None:
            self.stats.last_success = time.monotonic()
        if self._projector is not None:
            # Shielded so that a cancelled flush never cancels the projector.
            await asyncio.shield(self._projector)
        if self._unprojected:
            await self._heal()
        return self.stats.flushed - before

    async def _write(self, batch: list[PendingVote]) -> None:
        build_ids = sorted({v.build_id for v in batch})
        async with self._db.acquire_connection() as conn, conn.transaction():
            # The recount must walk build_votes_tally_idx whatever the statistics say: right
            # after deployment (or a bulk load) they describe an empty table, and a per-build
            # sequential scan of a growing table would make every batch slower than the last.
            await conn.execute("SET LOCAL enable_seqscan = off")
            # Locks first, in sorted id order; it also tells which builds each session may see.
            locked = await conn.fetch(_LOCK_SQL, build_ids, timeout=STATEMENT_TIMEOUT_S)
            access: dict[str, Access] = {
                r["build_id"]: (r["listed"], r["owner_session"], r["owner_player"]) for r in locked
            }
            # First visible submission per (build, session) and per (build, player) goes to
            # SQL; repeats in the batch are 409s.
            first = _first_votes([v for v in batch if _may_vote(access.get(v.build_id), v)])
            live = sorted(first.values(), key=lambda v: (v.build_id, v.session_id))
            live, limited = await self._within_network_limits(conn, live)
            rows = await conn.fetch(
                _INSERT_AND_RECOUNT_SQL,
                [v.build_id for v in live],
                [v.session_id for v in live],
                [v.rating for v in live],
                [v.player_id for v in live],
                [v.source_network for v in live],
                timeout=STATEMENT_TIMEOUT_S,
            )
            self.statements += 6  # BEGIN, SET LOCAL, lock, network counts, insert, COMMIT
        inserted = {(r["build_id"], r["session_id"]) for r in rows}
        tallies = {r["build_id"]: (r["rating_sum"], r["vote_count"]) for r in rows}
        self._answer(batch, first, access, inserted, tallies, limited)
        if tallies:
            self._to_project.update(tallies)
            if self._projector is None or self._projector.done():
                self._projector = asyncio.get_running_loop().create_task(self._drain_projections())

    async def _within_network_limits(
        self, conn: Any, live: list[PendingVote]
    ) -> tuple[list[PendingVote], dict[int, float]]:
        """The votes whose (build, network) has room left in the window, in order; the
        others by id(vote) with the seconds until a slot frees (answered 429)."""
        limit = self.votes_per_network
        pairs = sorted({(v.build_id, v.source_network) for v in live if v.source_network})
        if limit is None or not pairs:
            return live, {}
        counted = await conn.fetch(
            _NETWORK_SQL,
            [b for b, _ in pairs],
            [n for _, n in pairs],
            float(NETWORK_WINDOW_S),
            timeout=STATEMENT_TIMEOUT_S,
        )
        room = {(r["build_id"], r["net"]): limit - r["n"] for r in counted}
        wait = {(r["build_id"], r["net"]): float(r["wait_s"] or 0.0) for r in counted}
        kept: list[PendingVote] = []
        limited: dict[int, float] = {}
        for vote in live:
            key = (vote.build_id, vote.source_network)
            if vote.source_network is None or room[key] > 0:
                if vote.source_network is not None:
                    room[key] -= 1
                kept.append(vote)
            else:
                limited[id(vote)] = wait[key] or float(NETWORK_WINDOW_S)
        return kept, limited

    async def _drain_projections(self) -> None:
        while self._to_project:
            tallies, self._to_project = self._to_project, {}
            await self._project(tallies)

    async def stop(self, timeout_s: float) -> int:
        pending = await super().stop(timeout_s)
        if self._projector is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._projector), timeout=2.0)
            except TimeoutError:
                log.warning("rating projection unfinished at stop; it heals on the next vote")
        return pending

    def _answer(
        self,
        batch: list[PendingVote],
        first: dict[tuple[str, str], PendingVote],
        access: dict[str, Access],
        inserted: set[tuple[str, str]],
        tallies: dict[str, tuple[int, int]],
        limited: dict[int, float],
    ) -> None:
        for vote in batch:
            key = (vote.build_id, vote.session_id)
            if not _may_vote(access.get(vote.build_id), vote):
                result = VoteResult(Outcome.NOT_FOUND)
            elif id(vote) in limited:
                result = VoteResult(Outcome.NETWORK_LIMITED, retry_after_s=limited[id(vote)])
            elif key in inserted and first.get(key) is vote:
                rating_sum, vote_count = tallies[vote.build_id]
                result = VoteResult(Outcome.ACCEPTED, rating_sum, vote_count)
            else:
                result = VoteResult(Outcome.DUPLICATE)
            if not vote.future.done():
                vote.future.set_result(result)

    async def _heal(self) -> None:
        """Re-project builds whose projection failed, with fresh tallies from Postgres."""
        build_ids = sorted(self._unprojected)
        rows = await self._db.execute_query_dict(_TALLIES_SQL, [build_ids])
        self._unprojected.difference_update(build_ids)
        await self._project({r["build_id"]: (r["rating_sum"], r["vote_count"]) for r in rows})

    async def _project(self, tallies: dict[str, tuple[int, int]]) -> None:
        """Absolute tallies to Valkey after the commit; failures are healed on a later tick."""
        if not tallies:
            return
        try:
            async with self._valkey.pipeline(transaction=False) as pipe:
                for build_id, (rating_sum, vote_count) in tallies.items():
                    key = keys.rating(build_id)
                    mapping: dict[Any, Any] = {"rating_sum": rating_sum, "vote_count": vote_count}
                    pipe.hset(key, mapping=mapping)
                    pipe.expire(key, keys.RATING_TTL_S)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            if not self._unprojected:
                log.warning("rating projection deferred (Valkey: %s)", exc)
            self._unprojected.update(tallies)
