"""A small keep-alive HTTP/1.1 load generator with exact per-request accounting.

Every analytics event carries a unique id in `result_count`, every vote a fresh session, so
a drill can compare the acknowledged set with what Postgres holds, row by row. A request
counts as *sent* once its bytes were written; it is then *acked* (2xx), *rejected* (any
other status) or *ambiguous* (the connection died before an answer: it may or may not have
been applied). Connection refusals before anything was written are *unsent*.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

QUERIES = (
    "tank build",
    "best healer",
    "paladin guide",
    "mage pvp",
    "node war",
    "ranger bow",
    "bard songs",
    "cleric support",
    "summoner pets",
    "rogue stealth",
)
MODES = ("quick", "quick", "smart", "deep")
REQUEST_TIMEOUT_S = 15.0


class Unsent(Exception):
    """The request never reached the server (connect refused / reset before writing)."""


class Ambiguous(Exception):
    """The request was written but no complete answer came back."""


@dataclass
class Tally:
    """Outcomes of one kind of request."""

    sent: int = 0
    unsent: int = 0
    ambiguous: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    acked_at: list[float] = field(default_factory=list)  # time.monotonic() of each 2xx
    first_status_at: dict[int, float] = field(default_factory=dict)
    first_body: dict[int, bytes] = field(default_factory=dict)  # first answer per status
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)
    status_log: list[int] = field(default_factory=list)  # aligned with latencies
    rate_limit_headers: bool = False
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def acked(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def rejected(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def record(self, status: int, started: float, headers: bytes, body: bytes = b"") -> None:
        now = time.monotonic()
        self.statuses[status] += 1
        if status not in self.first_status_at:
            self.first_status_at[status] = now
            self.first_body[status] = body[:300]
        if 200 <= status < 300:
            self.acked_at.append(now)
        self.latencies.append((started, now - started))
        self.status_log.append(status)
        if not self.rate_limit_headers and b"x-ratelimit-limit" in headers.lower():
            self.rate_limit_headers = True

    def acked_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.acked_at if start <= t < end)

    def summary(self) -> str:
        codes = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"sent {self.sent}, acked {self.acked}, rejected {self.rejected} ({codes}), "
            f"ambiguous {self.ambiguous}, unsent {self.unsent}"
        )


class Connection:
    """One keep-alive connection; reconnects on the next request after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        session: str | None = None,
        forwarded_for: str | None = None,
    ) -> tuple[int, bytes, bytes]:
        """(status, raw headers, body); raises Unsent or Ambiguous."""
        if self._writer is None:
            try:
                self._reader, self._writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), 5
                )
            except (OSError, TimeoutError) as exc:
                raise Unsent(type(exc).__name__) from exc
        assert self._reader is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if session:
            head.append(f"X-Session-ID: {session}")
        if forwarded_for:  # honoured only by a server with TRUSTED_PROXIES covering us
            head.append(f"X-Forwarded-For: {forwarded_for}")
        if body:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        try:
            self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await self._writer.drain()
        except OSError as exc:  # the server closed an idle keep-alive connection
            self.close()
            raise Unsent(type(exc).__name__) from exc
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                raw = await self._reader.readuntil(b"\r\n\r\n")
                status = int(raw.split(b" ", 2)[1])
                lower = raw.lower()
                length = 0
                marker = lower.find(b"content-length:")
                if marker >= 0:
                    length = int(lower[marker + 15 : lower.index(b"\r\n", marker)])
                payload = await self._reader.readexactly(length) if length else b""
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.close()
            raise Ambiguous(type(exc).__name__) from exc
        if b"connection: close" in lower:
            self.close()
        return status, raw, payload

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


_ids = itertools.count(1)


def next_id() -> int:
    """Unique per drill process: analytics event ids (result_count) and vote sessions."""
    return next(_ids)


@dataclass
class Load:
    """Closed-loop senders against one server until `stop` is set."""

    host: str
    port: int
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    analytics: Tally = field(default_factory=Tally)
    votes: Tally = field(default_factory=Tally)
    reads: Tally = field(default_factory=Tally)
    reads_by_route: dict[str, Tally] = field(default_factory=dict)
    acked_events: set[int] = field(default_factory=set)
    ambiguous_events: set[int] = field(default_factory=set)
    acked_votes: set[tuple[str, str]] = field(default_factory=set)
    ambiguous_votes: set[tuple[str, str]] = field(default_factory=set)
    vote_log: list[tuple[float, str]] = field(default_factory=list)  # (acked at, build)
    creates: Tally = field(default_factory=Tally)
    acked_creates: dict[str, str] = field(default_factory=dict)  # unique name -> build_id
    ambiguous_creates: set[str] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(
        self,
        *,
        analytics: int = 0,
        votes: int = 0,
        reads: int = 0,
        creates: int = 0,
        build_ids: list[str] | None = None,
    ) -> None:
        for _ in range(analytics):
            self._spawn(self._analytics_loop)
        for _ in range(votes):
            assert build_ids, "votes need builds"
            self._spawn(lambda conn, ids=build_ids: self._vote_loop(conn, ids))
        for _ in range(creates):
            self._spawn(self._create_loop)
        for _ in range(reads):
            assert build_ids, "reads need builds"
            self._spawn(lambda conn, ids=build_ids: self._read_loop(conn, ids))

    def _spawn(self, loop: Callable[[Connection], object]) -> None:
        async def run() -> None:
            conn = Connection(self.host, self.port)
            try:
                await loop(conn)  # type: ignore[misc]
            finally:
                conn.close()

        self._tasks.append(asyncio.get_running_loop().create_task(run()))

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self._tasks)
        self._tasks.clear()

    def voted_since(self, moment: float) -> set[str]:
        """Builds that got an acknowledged vote at or after `moment`."""
        return {build_id for at, build_id in self.vote_log if at >= moment}

    async def _send(
        self,
        tally: Tally,
        conn: Connection,
        method: str,
        path: str,
        body: bytes,
        session: str,
        forwarded_for: str | None = None,
    ) -> int | None:
        """Status, or None when unsent/ambiguous (both counted)."""
        started = time.monotonic()
        try:
            status, headers, answer = await conn.request(method, path, body, session, forwarded_for)
        except Unsent as exc:
            tally.unsent += 1
            tally.errors[f"unsent {exc}"] += 1
            await asyncio.sleep(0.02)  # server down or restarting: do not spin
            return None
        except Ambiguous as exc:
            tally.sent += 1
            tally.ambiguous += 1
            tally.errors[f"ambiguous {exc}"] += 1
            return None
        tally.sent += 1
        tally.record(status, started, headers, answer)
        return status

    async def _analytics_loop(self, conn: Connection) -> None:
        rng = random.Random()
        while not self.stop.is_set():
            event_id = next_id()
            body = json.dumps(
                {
                    "query": f"{rng.choice(QUERIES)} {event_id % 40}",
                    "search_mode": rng.choice(MODES),
                    "result_count": event_id,
                }
            ).encode()
            session = f"sess_{rng.randrange(5000):024x}"
            before = self.analytics.ambiguous
            status = await self._send(
                self.analytics, conn, "POST", "/api/v1/analytics/search", body, session
            )
            if status is not None and 200 <= status < 300:
                self.acked_events.add(event_id)
            elif status is None and self.analytics.ambiguous > before:
                self.ambiguous_events.add(event_id)

    async def _vote_loop(self, conn: Connection, build_ids: list[str]) -> None:
        rng = random.Random()
        run = rng.randrange(16**8)
        while not self.stop.is_set():
            build_id = rng.choice(build_ids)
            vote_id = next_id()
            session = f"sess_{run:08x}{vote_id:016x}"
            # A fresh voter on a network of its own (where the server trusts us as a proxy):
            # one network's votes on a build are capped at 10 a day, which a drill would reach.
            network = f"10.{(vote_id >> 8) & 255}.{vote_id & 255}.1"
            body = json.dumps({"rating": rng.randint(1, 5)}).encode()
            before = self.votes.ambiguous
            status = await self._send(
                self.votes, conn, "POST", f"/api/v1/builds/{build_id}/vote", body, session, network
            )
            if status == 200:
                self.acked_votes.add((build_id, session))
                self.vote_log.append((time.monotonic(), build_id))
            elif status is None and self.votes.ambiguous > before:
                self.ambiguous_votes.add((build_id, session))

    async def _create_loop(self, conn: Connection) -> None:
        """POST /builds, each with a unique name: the audit finds every build by its name."""
        rng = random.Random()
        while not self.stop.is_set():
            name = f"drill build {next_id()}"
            body = json.dumps(
                {
                    "name": name,
                    "primary_archetype": rng.choice(("tank", "mage", "cleric")),
                    "secondary_archetype": "bard",
                    "race": "vek",
                }
            ).encode()
            session = f"sess_{rng.randrange(16**24):024x}"
            before = self.creates.ambiguous
            started = time.monotonic()
            try:
                status, headers, answer = await conn.request(
                    "POST", "/api/v1/builds", body, session
                )
            except Unsent as exc:
                self.creates.unsent += 1
                self.creates.errors[f"unsent {exc}"] += 1
                await asyncio.sleep(0.02)
                continue
            except Ambiguous as exc:
                self.creates.sent += 1
                self.creates.ambiguous += 1
                self.creates.errors[f"ambiguous {exc}"] += 1
                if self.creates.ambiguous > before:
                    self.ambiguous_creates.add(name)
                continue
            self.creates.sent += 1
            self.creates.record(status, started, headers, answer)
            if status == 201:
                self.acked_creates[name] = json.loads(answer)["build_id"]

    async def _read_loop(self, conn: Connection, build_ids: list[str]) -> None:
        rng = random.Random()
        routes = {
            "GET /analytics/popular-queries": lambda: "/api/v1/analytics/popular-queries",
            "GET /builds?filter&sort": lambda: "/api/v1/builds?primary_archetype=tank&sort=rating",
            "GET /builds/popular": lambda: "/api/v1/builds/popular?period=week",
            "GET /builds/{id}": lambda: f"/api/v1/builds/{rng.choice(build_ids)}",
        }
        for route in routes:
            self.reads_by_route.setdefault(route, Tally())
        session = f"sess_{rng.randrange(16**24):024x}"
        while not self.stop.is_set():
            route, path = rng.choice(list(routes.items()))
            status = await self._send(self.reads, conn, "GET", path(), b"", session)
            if status is not None:
                started, seconds = self.reads.latencies[-1]
                tally = self.reads_by_route[route]
                tally.latencies.append((started, seconds))
                tally.status_log.append(status)
                tally.statuses[status] += 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def latency_ms(
    tally: Tally, start: float, end: float, status: int | None = None
) -> tuple[float, float, int]:
    """p50, p99 (ms) and count of the answered requests (with `status`, if given) that
    started in [start, end)."""
    window = [
        dt * 1000
        for (t, dt), got in zip(tally.latencies, tally.status_log, strict=True)
        if start <= t < end and (status is None or got == status)
    ]
    return percentile(window, 50), percentile(window, 99), len(window)
