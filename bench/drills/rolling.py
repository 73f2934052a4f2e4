"""Rolling restart of a fleet behind a load balancer, the way Kubernetes rolls a Deployment.

INSTANCES servers x 2 workers on the same PostgreSQL and Valkey, behind HAProxy (Debian's
package, installed when missing; it stands in for the Service/gateway): health checks on
/health/ready, `retries` + `option redispatch`, and `retry-on conn-failure` only (a request
that reached a server is never sent twice: a retried POST could count twice). A new
connection per request (`http-server-close`), so no request races a closing keep-alive.

Under steady mixed load (searches, votes on a few hot builds with a fresh session each,
creates, reads) each instance in turn is: removed from the balancer (the runtime API's
`drain`, what the endpoints controller does when a pod is deleted), given the preStop
time, sent SIGTERM, waited for, started again on its port, and put back once HAProxy's
checks of /health/ready pass; ROUNDS times around. Then every instance gets SIGTERM and
PostgreSQL is audited: every acknowledged create, vote and search exactly once, tallies
equal a recount, popular queries equal a recount from the raw events, and client-visible
errors (any non-2xx answer, or a connection that died) at most 0.1 % of requests, by kind.

DRILL_INSTANCES (3), DRILL_ROUNDS (2), DRILL_PRESTOP_S (1), DRILL_LOAD_S (steady load
before and after the restarts).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.drills.common import (
    EXIT_BUDGET_S,
    LOAD_S,
    WORKERS,
    DrillResult,
    reconcile_check,
    server_env,
    tallies_exact,
)
from bench.drills.load import Load, Tally
from bench.drills.stores import DrillStores
from tests.debian import debian_tool
from tests.server import ROOT, ServerProcess, free_port

INSTANCES = int(os.environ.get("DRILL_INSTANCES", 3))
ROUNDS = int(os.environ.get("DRILL_ROUNDS", 2))
PRESTOP_S = float(os.environ.get("DRILL_PRESTOP_S", 1))
HOT_BUILDS = 5
MAX_ERROR_RATIO = 0.001
CHECK_INTER_MS = 500

HAPROXY_CFG = """\
global
    maxconn 4096
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout queue 15s
    retries 3
    option redispatch 1
    retry-on conn-failure
    option http-server-close

frontend api
    bind 127.0.0.1:{port}
    default_backend fleet

backend fleet
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter {inter}ms fastinter {inter}ms downinter {inter}ms fall 1 rise 2
{servers}
"""


class HAProxy:
    """haproxy -db with a runtime (admin) socket; servers s1..sN on the given ports."""

    def __init__(self, ports: list[int]) -> None:
        binary = debian_tool("haproxy", "haproxy")
        if binary is None:
            raise RuntimeError("haproxy missing and not installable (apt-get, root)")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="drill-haproxy-"))
        self.socket = self.dir / "admin.sock"
        self.port = free_port()
        servers = "\n".join(
            f"    server s{i} 127.0.0.1:{port} check" for i, port in enumerate(ports, 1)
        )
        config = self.dir / "haproxy.cfg"
        config.write_text(
            HAPROXY_CFG.format(
                socket=self.socket, port=self.port, inter=CHECK_INTER_MS, servers=servers
            )
        )
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.dir / "haproxy.log").open("wb")
        self.process = subprocess.Popen(
            [self.binary, "-db", "-f", str(self.config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(
                    f"haproxy did not start: {(self.dir / 'haproxy.log').read_text()}"
                )
            time.sleep(0.05)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def status(self, server: str) -> str:
        """UP, DOWN, DRAIN, MAINT ... from `show stat` of backend `fleet`."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            fields = dict(zip(header, line.split(","), strict=False))
            if fields.get("pxname") == "fleet" and fields.get("svname") == server:
                return fields["status"]
        raise KeyError(server)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def instance(stores: DrillStores, port: int, generation: int, name: str) -> ServerProcess:
    server = ServerProcess(
        stores.admin_database_url, stores.admin_valkey_url, workers=WORKERS, **server_env()
    )
    server.port = port
    server.base_url = f"http://127.0.0.1:{port}"
    server.env["PORT"] = str(port)
    server.log_path = ROOT / ".data" / f"rolling-{name}-{generation}.log"
    return server


async def wait_until(predicate: object, timeout_s: float, what: str) -> float:
    started = time.monotonic()
    while not await asyncio.to_thread(predicate):  # type: ignore[arg-type]
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def error_kinds(load: Load) -> Counter[str]:
    """Client-visible errors by kind: status code with the first body's error code, or how
    the connection failed."""
    kinds: Counter[str] = Counter()
    tallies: dict[str, Tally] = {
        "search": load.analytics,
        "vote": load.votes,
        "create": load.creates,
        "read": load.reads,
    }
    for name, tally in tallies.items():
        for status, n in tally.statuses.items():
            if not 200 <= status < 300:
                body = tally.first_body.get(status, b"").decode(errors="replace")
                code = body.split('"error":"', 1)[1].split('"', 1)[0] if '"error":"' in body else ""
                kinds[f"{name} {status} {code}".strip()] += n
        for error, n in tally.errors.items():
            kinds[f"{name} {error}"] += n
    return kinds


async def rolling_restart(stores: DrillStores) -> DrillResult:
    result = DrillResult(
        f"rolling restart: {INSTANCES} instances x {WORKERS} workers behind HAProxy, "
        f"{ROUNDS} rounds"
    )
    build_ids = await stores.reset()
    hot = build_ids[:HOT_BUILDS]
    ports = [free_port() for _ in range(INSTANCES)]
    generations = dict.fromkeys(range(INSTANCES), 0)
    servers = [instance(stores, ports[i], 0, f"s{i + 1}") for i in range(INSTANCES)]
    proxy = HAProxy(ports)
    restarts: list[tuple[str, int | None, float, float]] = []
    load: Load | None = None
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start, 120.0) for s in servers))
        await asyncio.to_thread(proxy.start)
        for i in range(INSTANCES):
            await wait_until(lambda i=i: proxy.status(f"s{i + 1}") == "UP", 30, "HAProxy up")
        load = Load("127.0.0.1", proxy.port)
        load.start(analytics=12, votes=4, creates=2, reads=4, build_ids=hot)
        await asyncio.sleep(LOAD_S)
        for _round in range(ROUNDS):
            for i in range(INSTANCES):
                name = f"s{i + 1}"
                started = time.monotonic()
                proxy.command(f"set server fleet/{name} state drain")
                await asyncio.sleep(PRESTOP_S)  # preStop: the balancer stops routing here
                old = servers[i]
                old.terminate()
                try:
                    code: int | None = await asyncio.to_thread(old.wait, EXIT_BUDGET_S + 30)
                except subprocess.TimeoutExpired:
                    code = None
                    old.kill()
                stopped = time.monotonic() - started
                generations[i] += 1
                servers[i] = instance(stores, ports[i], generations[i], name)
                await asyncio.to_thread(servers[i].start, 120.0)
                proxy.command(f"set server fleet/{name} state ready")
                await wait_until(lambda name=name: proxy.status(name) == "UP", 30, f"{name} up")
                restarts.append((name, code, stopped, time.monotonic() - started))
        await asyncio.sleep(LOAD_S)
    finally:
        if load is not None:
            await load.finish()
        codes = []
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.terminate()
        for server in servers:
            try:
                codes.append(await asyncio.to_thread(server.wait, EXIT_BUDGET_S + 30))
            except Exception:
                codes.append(None)
            server.kill()
        proxy.stop()
    assert load is not None
    await audit(result, stores, load, restarts, codes)
    return result


async def audit(
    result: DrillResult,
    stores: DrillStores,
    load: Load,
    restarts: list[tuple[str, int | None, float, float]],
    final_codes: list[int | None],
) -> None:
    a, v, c, r = load.analytics, load.votes, load.creates, load.reads
    events = [row[0] for row in await stores.fetch("SELECT result_count FROM search_events")]
    stored_events = Counter(events)
    votes = Counter(
        (row[0], row[1])
        for row in await stores.fetch("SELECT build_id, session_id FROM build_votes")
    )
    builds = Counter(
        row[0]
        for row in await stores.fetch("SELECT name FROM builds WHERE name LIKE 'drill build %'")
    )
    lost_events = len(load.acked_events - set(stored_events))
    dup_events = sum(n - 1 for n in stored_events.values() if n > 1)
    stray_events = len(set(stored_events) - load.acked_events - load.ambiguous_events)
    lost_votes = len(load.acked_votes - set(votes))
    lost_creates = len(set(load.acked_creates) - set(builds))
    dup_creates = sum(n - 1 for n in builds.values() if n > 1)
    stray_creates = len(set(builds) - set(load.acked_creates) - load.ambiguous_creates)
    # Popular queries: the rollups (what /analytics/popular-queries ranks) against a recount
    # of the raw events, per query, mode and hour; and the top 10 both ways.
    rollups = {
        (row[0], row[1], row[2]): row[3]
        for row in await stores.fetch(
            "SELECT query_norm, search_mode, hour, sum(count) FROM search_rollups GROUP BY 1, 2, 3"
        )
    }
    recount = {
        (row[0], row[1], row[2]): row[3]
        for row in await stores.fetch(
            "SELECT query_norm, search_mode, date_trunc('hour', created_at), count(*) "
            "FROM search_events GROUP BY 1, 2, 3"
        )
    }
    top_sql = (
        "SELECT query_norm, search_mode, {count} AS n FROM {table} GROUP BY 1, 2 "
        "ORDER BY n DESC, 1, 2 LIMIT 10"
    )
    top_rollups = [
        tuple(x)
        for x in await stores.fetch(top_sql.format(count="sum(count)", table="search_rollups"))
    ]
    top_raw = [
        tuple(x)
        for x in await stores.fetch(top_sql.format(count="count(*)", table="search_events"))
    ]
    drift = (
        await stores.fetch(
            "SELECT count(*) FROM builds b LEFT JOIN (SELECT build_id, count(*) AS n, "
            "sum(rating) AS s FROM build_votes GROUP BY build_id) x USING (build_id) "
            "WHERE b.vote_count <> coalesce(x.n, 0) OR b.rating_sum <> coalesce(x.s, 0)"
        )
    )[0][0]
    requests = sum(t.sent + t.unsent for t in (a, v, c, r))
    kinds = error_kinds(load)
    errors = sum(kinds.values())
    ratio = errors / requests if requests else 1.0

    result.tables += [
        "| request | sent | acked (2xx) | in PostgreSQL | lost | duplicated "
        "| client-visible errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| search (POST /analytics/search) | {a.sent} | {len(load.acked_events)} | "
        f"{len(events)} | {lost_events} | {dup_events} | {a.rejected + a.ambiguous + a.unsent} |",
        f"| vote (5 hot builds) | {v.sent} | {len(load.acked_votes)} | {sum(votes.values())} | "
        f"{lost_votes} | {sum(n - 1 for n in votes.values() if n > 1)} | "
        f"{v.rejected + v.ambiguous + v.unsent} |",
        f"| create (POST /builds) | {c.sent} | {len(load.acked_creates)} | "
        f"{sum(builds.values())} | {lost_creates} | {dup_creates} | "
        f"{c.rejected + c.ambiguous + c.unsent} |",
        f"| read (GET) | {r.sent} | {r.acked} | — | — | — | "
        f"{r.rejected + r.ambiguous + r.unsent} |",
        f"| **all** | {requests} | | | | | **{errors} = {ratio:.4%}** |",
        "",
        "| restart | exit code | drained + stopped | back in the balancer |",
        "|---|---:|---:|---:|",
        *(
            f"| {n + 1}: {name} | {code} | {stopped:.1f} s | {total:.1f} s |"
            for n, (name, code, stopped, total) in enumerate(restarts)
        ),
    ]
    result.say("error kinds: " + (", ".join(f"{k}: {n}" for k, n in kinds.most_common()) or "none"))
    result.say(f"final stop of the {len(final_codes)} instances: exit codes {final_codes}")
    result.say(f"popular queries, top 10 from the rollups: {top_rollups[:3]} ...")
    result.numbers.update(
        analytics_sent=a.sent,
        analytics_acked=len(load.acked_events),
        analytics_persisted=len(events),
        votes_sent=v.sent,
        votes_acked=len(load.acked_votes),
        votes_persisted=sum(votes.values()),
        creates_acked=len(load.acked_creates),
        creates_persisted=sum(builds.values()),
        requests=requests,
        client_errors=errors,
        error_kinds=dict(kinds),
        restarts=len(restarts),
    )
    result.check(
        f"{len(restarts)} restarts, each exit code 0",
        len(restarts) == INSTANCES * ROUNDS and all(x[1] == 0 for x in restarts),
    )
    result.check("final stops exit 0", all(code == 0 for code in final_codes))
    result.check(
        "every acknowledged search in PostgreSQL exactly once",
        lost_events == 0 and dup_events == 0,
    )
    result.check("no search stored that was answered with an error", stray_events == 0)
    result.check(
        "every acknowledged vote in PostgreSQL exactly once",
        lost_votes == 0 and all(n == 1 for n in votes.values()),
    )
    result.check(
        "every acknowledged create in PostgreSQL exactly once",
        lost_creates == 0 and dup_creates == 0,
    )
    result.check("no build stored that was answered with an error", stray_creates == 0)
    tallies_exact(
        result,
        {"tally_drift_builds": int(drift), "tally_check_drift": await reconcile_check(stores)},
    )
    result.check("popular queries: rollups equal a recount of the raw events", rollups == recount)
    result.check(
        "popular queries: the top 10 equal the top 10 of the raw events", top_rollups == top_raw
    )
    result.check(
        f"client-visible errors {errors} of {requests} = {ratio:.4%} <= {MAX_ERROR_RATIO:.1%}",
        ratio <= MAX_ERROR_RATIO,
    )
