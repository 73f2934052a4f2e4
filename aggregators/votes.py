"""VoteAggregator: group commit of concurrent votes; durable before anyone gets an answer.

Submissions wait on a future. The loop commits everything pending as ONE statement (its own
transaction): lock the touched builds in sorted id order, insert the votes (ON CONFLICT DO
NOTHING RETURNING), add what RETURNING gave to rating_sum/vote_count of the locked rows.
Then each waiter learns its outcome, and Valkey gets the absolute tallies Postgres returned.
A batch costs O(its votes), never O(votes of a build): no stored vote is read, and nothing is
counted in Python. Recounts live in `python -m service reconcile-tallies` and the periodic check.

Per-network limit (issue 17; on while rate limits are): a vote carries its client network,
and one network gets at most votes_per_network votes per build per NETWORK_WINDOW_S. Such a
batch runs as one transaction: lock the builds (sorted), count each (build, network)'s votes
in the window (a statement after the lock sees every committed vote of those builds), keep
the votes with room left (the rest: NETWORK_LIMITED, answered 429), then the batch
statement above on the kept votes."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Iterator
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
    # The voter's client network: at most votes_per_network per build per NETWORK_WINDOW_S.
    source_network: str | None = None
    queued_at: float = field(default_factory=time.monotonic, repr=False)


# One batch = one statement = one transaction (autocommit: no BEGIN/COMMIT round trips).
# `locked` takes the row locks of the touched builds in sorted id order (LockRows sits above
# the Sort); every vote writer takes them before inserting, so batches never deadlock, and
# it tells which builds each session may see. `ins` inserts the visible votes in submission
# order per build (ON CONFLICT DO NOTHING: without a target, a repeat of either (build,
# session) or (build, player), in the table or earlier in this batch, is dropped) and
# RETURNING lists exactly the rows this statement inserted. `bump` adds their sums to the
# locked rows: `vote_count + n` is evaluated on the newest row version (which this statement
# holds locked), so the tallies stay exact without reading a single stored vote.
_BATCH_SQL = """
WITH v AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::int2[], $5::text[], $7::text[])
        AS t(ord, build_id, session_id, rating, player_id, source_network)
), locked AS MATERIALIZED (
    SELECT build_id, is_public OR is_template AS listed, owner_session, owner_player
    FROM builds WHERE build_id = ANY($6::text[])
    ORDER BY build_id FOR NO KEY UPDATE
), ins AS (
    INSERT INTO build_votes (build_id, session_id, rating, created_at, player_id, source_network)
    SELECT v.build_id, v.session_id, v.rating, now(), v.player_id, v.source_network
    FROM v JOIN locked l USING (build_id)
    WHERE l.listed OR CASE WHEN l.owner_player IS NOT NULL THEN l.owner_player = v.player_id
                           ELSE l.owner_session = v.session_id END
    ORDER BY v.build_id, v.ord
    ON CONFLICT DO NOTHING
    RETURNING build_id, session_id, player_id, rating
), added AS (
    SELECT build_id, sum(rating)::int AS rating_sum, count(*)::int AS vote_count,
           array_agg(session_id) AS sessions, array_agg(player_id) AS players
    FROM ins GROUP BY build_id
), bump AS (
    UPDATE builds b SET rating_sum = b.rating_sum + a.rating_sum,
                        vote_count = b.vote_count + a.vote_count
    FROM added a WHERE b.build_id = a.build_id
    RETURNING b.build_id, b.rating_sum, b.vote_count
)
SELECT l.build_id, l.listed, l.owner_session, l.owner_player,
       a.sessions, a.players, t.rating_sum, t.vote_count
FROM locked l LEFT JOIN added a USING (build_id) LEFT JOIN bump t USING (build_id)
"""

NETWORK_WINDOW_S = 24 * 3600
VOTES_PER_NETWORK = 10
_LOCK_SQL = """
SELECT build_id, is_public OR is_template AS listed, owner_session, owner_player
FROM builds WHERE build_id = ANY($1::text[])
ORDER BY build_id FOR NO KEY UPDATE
"""
# Each (build, network) of the batch: its votes in the window and when the oldest ages out
# (build_votes_network_idx). Run after _LOCK_SQL in the same transaction: exact.
_NETWORK_SQL = """
SELECT t.build_id, t.net, count(v.*)::int AS n,
       extract(epoch FROM min(v.created_at) + make_interval(secs => $3) - now()) AS wait_s
FROM unnest($1::text[], $2::text[]) AS t(build_id, net)
LEFT JOIN build_votes v ON v.build_id = t.build_id AND v.source_network = t.net
    AND v.created_at > now() - make_interval(secs => $3)
GROUP BY t.build_id, t.net
"""

_TALLIES_SQL = (
    "SELECT build_id, rating_sum, vote_count FROM builds WHERE build_id = ANY($1::text[])"
)


Access = tuple[bool, str | None, str | None]  # listed, owner_session, owner_player
Key = tuple[str, str, str | None]  # build_id, session_id, player_id


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


def zip_keys(build_id: str, sessions: list[str], players: list[str | None]) -> Iterator[Key]:
    return ((build_id, session, player) for session, player in zip(sessions, players, strict=True))


class _Unavailable:
    """Stands in for a connection that could not be acquired: the batch fails with why."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        raise self.exc


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
        self.votes_per_network = votes_per_network  # None: no per-network limit
        # Batches committing at once, each on its own lane (connection): while one waits on
        # Postgres the next is being built. Safe: every batch locks builds in sorted id order,
        # so they cannot deadlock.
        self.max_inflight = max_inflight
        self._lanes: set[asyncio.Task[None]] = set()
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
            if self._unprojected and not self._lanes:
                try:
                    await self._heal()
                except Exception as exc:  # Postgres down: healed on a later tick
                    log.warning("rating projection heal failed: %s", exc)

    def _dispatch(self) -> None:
        """Open lanes for pending votes, up to max_inflight at once."""
        loop = asyncio.get_running_loop()
        while self._buffer and len(self._lanes) < self.max_inflight:
            task = loop.create_task(self._lane())
            self._lanes.add(task)

    async def _lane(self) -> None:
        """Commit batch after batch on one pooled connection while votes keep coming, then
        give it back: under load a batch costs one round trip, with no pool acquire/reset
        between batches. A failed batch ends the lane (its connection may be broken)."""
        try:
            async with self._db.acquire_connection() as conn:
                while self._buffer:
                    if not await self._commit(self._take(), conn):
                        break
        except Exception as exc:  # no connection (Postgres down): the batch fails, never waits
            if self._buffer:
                await self._commit(self._take(), _Unavailable(exc))
        finally:
            # Out of the lane count before the wake-up: votes that arrived while this lane
            # gave its connection back get a new lane at once, not at the next tick.
            if (me := asyncio.current_task()) is not None:
                self._lanes.discard(me)
            self._wake()

    def _take(self) -> list[PendingVote]:
        batch = self._buffer[: self.max_batch]
        del self._buffer[: self.max_batch]
        return batch

    async def _commit(self, batch: list[PendingVote], conn: Any) -> bool:
        """One group commit. A failed batch fails its waiters (503), it is never retried:
        a vote is answered only once it is durable, and never silently kept."""
        started = time.perf_counter()
        self._committing += len(batch)
        self._committing_since.append(batch[0].queued_at)
        try:
            await self._write(batch, conn)
        except Exception as exc:
            self.stats.failures += 1
            self._record(time.perf_counter() - started, 0, ok=False)
            log.warning("vote batch of %d failed: %s: %s", len(batch), type(exc).__name__, exc)
            failure = VoteNotStored(f"{type(exc).__name__}: {exc}")
            failure.__cause__ = exc
            for vote in batch:
                if not vote.future.done():
                    vote.future.set_exception(failure)
            return False
        else:
            self.stats.flushed += len(batch)
            self.stats.last_success = time.monotonic()
            self._record(time.perf_counter() - started, len(batch), ok=True)
            return True
        finally:
            self._committing -= len(batch)
            self._committing_since.remove(batch[0].queued_at)

    async def flush(self) -> int:
        """Commit everything pending and wait for it; then project and heal. Returns the
        number of votes committed by this call's batches."""
        before = self.stats.flushed
        while self._buffer or self._lanes:
            self._dispatch()
            if self._lanes:
                await asyncio.wait(set(self._lanes))
        if self.stats.last_success is None:
            self.stats.last_success = time.monotonic()
        await self._projected()
        if self._unprojected:
            await self._heal()
            await self._projected()
        return self.stats.flushed - before

    async def _projected(self) -> None:
        if self._projector is not None:
            # Shielded so that a cancelled flush never cancels the projector.
            await asyncio.shield(self._projector)

    async def _write(self, batch: list[PendingVote], conn: Any = None) -> None:
        if conn is None:
            async with self._db.acquire_connection() as own:
                return await self._write(batch, own)
        access: dict[str, Access] = {}
        limited: dict[int, float] = {}
        if self.votes_per_network is None or not any(v.source_network for v in batch):
            rows = await self._batch_statement(conn, batch)
        else:
            async with conn.transaction():
                locked = await conn.fetch(
                    _LOCK_SQL, sorted({v.build_id for v in batch}), timeout=STATEMENT_TIMEOUT_S
                )
                access = {
                    r["build_id"]: (r["listed"], r["owner_session"], r["owner_player"])
                    for r in locked
                }
                limited = await self._over_network_limit(conn, batch, access)
                kept = [v for v in batch if id(v) not in limited]
                rows = await self._batch_statement(conn, kept) if kept else []
                self.statements += 4  # BEGIN, lock, network counts, COMMIT
        inserted: set[Key] = set()
        tallies: dict[str, tuple[int, int]] = {}
        for r in rows:
            build_id = r["build_id"]
            access[build_id] = (r["listed"], r["owner_session"], r["owner_player"])
            if r["sessions"] is not None:
                inserted.update(zip_keys(build_id, r["sessions"], r["players"]))
                tallies[build_id] = (r["rating_sum"], r["vote_count"])
        self._answer(batch, access, inserted, tallies, limited)
        self._enqueue(tallies)

    def _enqueue(self, tallies: dict[str, tuple[int, int]]) -> None:
        """Tallies to Valkey through the one projector task, in the order they were read."""
        if tallies:
            self._to_project.update(tallies)
            if self._projector is None or self._projector.done():
                self._projector = asyncio.get_running_loop().create_task(self._drain_projections())

    async def _batch_statement(self, conn: Any, batch: list[PendingVote]) -> list[Any]:
        rows: list[Any] = await conn.fetch(
            _BATCH_SQL,
            list(range(len(batch))),
            [v.build_id for v in batch],
            [v.session_id for v in batch],
            [v.rating for v in batch],
            [v.player_id for v in batch],
            sorted({v.build_id for v in batch}),
            [v.source_network for v in batch],
            timeout=STATEMENT_TIMEOUT_S,
        )
        self.statements += 1
        return rows

    async def _over_network_limit(
        self, conn: Any, batch: list[PendingVote], access: dict[str, Access]
    ) -> dict[int, float]:
        """The visible votes whose (build, network) has no room left in the window, by
        id(vote), with the seconds until a slot frees. Room is taken in submission order."""
        limit = self.votes_per_network or 0
        visible = [v for v in batch if v.source_network and _may_vote(access.get(v.build_id), v)]
        pairs = sorted({(v.build_id, v.source_network or "") for v in visible})
        if not pairs:
            return {}
        counted = await conn.fetch(
            _NETWORK_SQL,
            [b for b, _ in pairs],
            [n for _, n in pairs],
            float(NETWORK_WINDOW_S),
            timeout=STATEMENT_TIMEOUT_S,
        )
        room = {(r["build_id"], r["net"]): limit - r["n"] for r in counted}
        wait = {(r["build_id"], r["net"]): float(r["wait_s"] or 0.0) for r in counted}
        limited: dict[int, float] = {}
        for vote in visible:
            key = (vote.build_id, vote.source_network or "")
            if room[key] > 0:
                room[key] -= 1
            else:
                limited[id(vote)] = wait[key] or float(NETWORK_WINDOW_S)
        return limited

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
        access: dict[str, Access],
        inserted: set[Key],
        tallies: dict[str, tuple[int, int]],
        limited: dict[int, float],
    ) -> None:
        """Inserted -> 200 (with the build's tallies after this batch), invisible -> 404,
        else 409. Identical (build, session, player) submissions were inserted in submission
        order, so the first visible one is the row RETURNING listed."""
        for vote in batch:
            key = (vote.build_id, vote.session_id, vote.player_id)
            if not _may_vote(access.get(vote.build_id), vote):
                result = VoteResult(Outcome.NOT_FOUND)
            elif id(vote) in limited:
                result = VoteResult(Outcome.NETWORK_LIMITED, retry_after_s=limited[id(vote)])
            elif key in inserted:
                inserted.discard(key)
                rating_sum, vote_count = tallies[vote.build_id]
                result = VoteResult(Outcome.ACCEPTED, rating_sum, vote_count)
            else:
                result = VoteResult(Outcome.DUPLICATE)
            if not vote.future.done():
                vote.future.set_result(result)

    async def _heal(self) -> None:
        """Re-project builds whose projection failed, with fresh tallies from Postgres. Through
        the projector, never around it: a projection still retrying with older tallies lands
        first, so it cannot overwrite these (it did: stale hashes after a Valkey outage)."""
        build_ids = sorted(self._unprojected)
        rows = await self._db.execute_query_dict(_TALLIES_SQL, [build_ids])
        self._unprojected.difference_update(build_ids)
        self._enqueue({r["build_id"]: (r["rating_sum"], r["vote_count"]) for r in rows})

    async def _project(self, tallies: dict[str, tuple[int, int]]) -> None:
        """Absolute tallies to Valkey after the commit; failures are healed on a later tick."""
        if not tallies:
            return
        try:
            await project_tallies(self._valkey, tallies)
        except (RedisError, OSError) as exc:
            if not self._unprojected:
                log.warning("rating projection deferred (Valkey: %s)", exc)
            self._unprojected.update(tallies)


# HSET + EXPIRE of every build's rating key in one script: one command, one round trip,
# however many builds the batch touched (a pipeline packs and parses 2 commands per build).
# Workers project independently, and one retrying through a Valkey outage can land after
# another's newer tallies: a vote_count below the stored one is skipped (votes only add), unless
# forced (a repair by reconcile-tallies may lower it). ARGV: ttl, force, then sum, count per key.
_PROJECT_LUA = """
local ttl, force = ARGV[1], ARGV[2] == '1'
for i, key in ipairs(KEYS) do
    local count = tonumber(ARGV[2 * i + 2])
    local stored = tonumber(redis.call('HGET', key, 'vote_count'))
    if force or stored == nil or count >= stored then
        redis.call('HSET', key, 'rating_sum', ARGV[2 * i + 1], 'vote_count', count)
    end
    redis.call('EXPIRE', key, ttl)
end
return #KEYS
"""


async def project_tallies(
    valkey: Redis, tallies: dict[str, tuple[int, int]], *, force: bool = False
) -> None:
    """Absolute rating_sum / vote_count (from Postgres) to each build's rating key; an older
    vote_count never replaces a newer one unless `force`."""
    if not tallies:
        return
    args: list[int] = [keys.RATING_TTL_S, int(force)]
    for rating_sum, vote_count in tallies.values():
        args += (rating_sum, vote_count)
    script = valkey.register_script(_PROJECT_LUA)
    await script(keys=[keys.rating(b) for b in tallies], args=args)
