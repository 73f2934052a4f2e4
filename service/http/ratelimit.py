"""Rate limits per player, session and client IP, counted in Valkey: shared by workers and pods.

The contract's categories (create build, vote, feedback, analytics record, edit or delete a
build, any API GET) are
checked per logged-in player (a verified bearer token; the session's numbers), per session,
then per client IP (RATE_LIMIT_IP_MULTIPLIER x the session's numbers),
in one script call (service.http.rate_counter). A request without a client-sent session is
counted per IP only (a fresh session has no history). A request is counted against all of
its limits or, when any of them refuses it, against none: one noisy session does not use up
its neighbours' IP budget, and refused requests write no key.

Fail open only when Valkey cannot be reached (connection refused or lost, timeout): requests
pass unchecked, counted in myashes_rate_limit_fail_open_total. Any other failure (Valkey
answers with an error: out of memory, a script error) refuses the request with 503 and
counts myashes_rate_limit_failed_closed_total: an allow-all limiter is never silent. Either
way myashes_rate_limit_enforced drops to 0, /health says `degraded` (via
Ctx.rate_limit_problem), and a warning is logged once per interval.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from prometheus_client import Counter, Gauge
from redis import exceptions as redis_exc
from sanic.response import BaseHTTPResponse

from service.config import Settings
from service.contract.errors import RateLimited, ServiceUnavailable
from service.ctx import ApiRequest, App, Ctx
from service.http.client_ip import ClientIp
from service.http.rate_counter import Check, Limit, RateCounter, Window
from service.http.sessions import session_of, session_was_sent

BUILD_CREATE, VOTE, FEEDBACK, ANALYTICS, EDIT, READ = (
    "build_create",
    "vote",
    "feedback",
    "analytics",
    "edit",
    "read",
)
_WHAT = {
    BUILD_CREATE: "creating builds",
    VOTE: "voting",
    FEEDBACK: "sending feedback",
    ANALYTICS: "recording searches",
    EDIT: "editing or deleting builds",
    READ: "reading",
}
LOG_INTERVAL_S = 60.0
SCOPES = ("player", "session", "ip")  # who a limit counts: myashes_rate_limited_total{scope}
NETWORK = "network"  # the per-network vote cap (checked in the vote's batch, not here)

RATE_LIMITED = Counter(
    "myashes_rate_limited_total",
    "Requests answered 429 rate_limited, by category and the limit hit "
    "(player, session, ip; network for the per-network vote cap).",
    ["category", "scope"],
)
FAIL_OPEN = Counter(
    "myashes_rate_limit_fail_open_total",
    "Rate-limited requests let through unchecked because Valkey could not be asked.",
)
FAILED_CLOSED = Counter(
    "myashes_rate_limit_failed_closed_total",
    "Rate-limited requests refused with 503 because Valkey answered the limiter with an error.",
)
ENFORCED = Gauge(
    "myashes_rate_limit_enforced",
    "1 while every worker's rate limiter counts requests; 0 while one fails open or closed.",
    multiprocess_mode="livemin",
)
# Valkey cannot be reached: the only case the limiter lets requests through unchecked.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # ConnectionRefusedError, builtin ConnectionError ("rate counter closed"), ...
    TimeoutError,
    redis_exc.ConnectionError,  # also BusyLoadingError (Valkey still loading its data)
    redis_exc.TimeoutError,
)
FAILED_RETRY_AFTER_S = 5

log = logging.getLogger("myashes.ratelimit")


@dataclass(frozen=True, slots=True)
class Rule:
    category: str
    per_session: Limit
    per_ip: Limit


def rules(settings: Settings) -> dict[str, Rule]:
    """Per-minute limits by category; the per-IP limit is RATE_LIMIT_IP_MULTIPLIER times."""
    per_minute = {
        BUILD_CREATE: settings.rate_limit_build_create,
        VOTE: settings.rate_limit_vote,
        FEEDBACK: settings.rate_limit_feedback,
        ANALYTICS: settings.rate_limit_analytics,
        EDIT: settings.rate_limit_edit,
        READ: settings.rate_limit_read,
    }
    factor = settings.rate_limit_ip_multiplier
    return {
        category: Rule(category, Limit(amount), Limit(amount * factor))
        for category, amount in per_minute.items()
    }


def category_of(request: ApiRequest) -> str | None:
    """A route's declared category (ctx_rate_limit=...), else READ for the API's GETs."""
    route = request.route
    if route is None:
        return None
    declared: str | None = getattr(route.ctx, "rate_limit", None)
    if declared is not None:
        return declared
    if request.method in ("GET", "HEAD") and route.path.startswith("api/"):
        return READ
    return None


def ip_key(ip: str) -> str:
    """The per-IP counter's identity: IPv6 clients by /64 (one subscriber gets a whole /64)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return ip


def headers_of(window: Window) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(window.limit),
        "X-RateLimit-Remaining": str(window.remaining),
        "X-RateLimit-Reset": str(math.ceil(window.reset_s)),
    }


def binding(windows: list[Window]) -> Window:
    """The window to report: the one that refused, else the one with fewest left."""
    refused = [w for w in windows if not w.allowed]
    return refused[0] if refused else min(windows, key=lambda w: w.remaining)


class Guard:
    """The request/response middleware: checks limits, answers 429, adds X-RateLimit-*."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rules = rules(settings)
        self.client_ip = ClientIp(settings.trusted_proxies)
        self.counter: RateCounter | None = None
        self.ctx: Ctx | None = None
        self._down = False  # Valkey unreachable: skip it until _skip_until, then one probes
        self._skip_until = 0.0
        self._skipped = 0
        self._logged_at = -math.inf

    async def open(self, app: App) -> None:
        for category in self.rules:  # per worker: every series the dashboard shows, from 0
            for scope in SCOPES:
                RATE_LIMITED.labels(category, scope)
        RATE_LIMITED.labels(VOTE, NETWORK)
        self.ctx = app.ctx
        url = app.ctx.settings.valkey_url
        if url is not None:
            self.counter = RateCounter(url)
        ENFORCED.set(1)

    async def close(self, app: App) -> None:
        if self.counter is not None:
            await self.counter.close()

    def _not_enforcing(self, problem: str, how: str, detail: str = "") -> None:
        """Report (gauge, /health, one warning per interval) that limits are not counted."""
        ENFORCED.set(0)
        if self.ctx is not None:
            self.ctx.rate_limit_problem = problem
        self._skipped += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_INTERVAL_S:
            log.warning(
                "rate limits not enforced (%s): %s%s; %d request(s) affected",
                how,
                problem,
                detail,
                self._skipped,
            )
            self._logged_at, self._skipped = now, 0

    def _fail_open(self, reason: str, detail: str = "") -> None:
        FAIL_OPEN.inc()
        self._not_enforcing(reason, "fail open", detail)

    def _enforcing(self) -> None:
        if self.ctx is not None and self.ctx.rate_limit_problem is not None:
            self.ctx.rate_limit_problem = None
            ENFORCED.set(1)
            log.warning("rate limits enforced again: Valkey answers")

    async def check(self, request: ApiRequest) -> None:
        category = category_of(request)
        if category is None:
            return
        rule = self.rules[category]
        if self.counter is None:
            self._fail_open("no Valkey configured")
            return
        if self._down:
            now = time.monotonic()
            if now < self._skip_until:
                self._fail_open("Valkey unavailable")
                return
            # This request probes Valkey; the others keep skipping it meanwhile.
            self._skip_until = now + self.settings.rate_limit_fail_open_retry_s
        checks: list[Check] = [("ip", rule.per_ip, ip_key(self.client_ip.of(request)))]
        if session_was_sent(request):
            checks.insert(0, ("session", rule.per_session, session_of(request)))
        player = request.ctx.player  # verified by service.auth before this middleware
        if player is not None:  # the session's numbers, per player: new sessions do not reset it
            checks.insert(0, ("player", rule.per_session, player.id))
        try:
            windows = await self.counter.hit(category, checks)
        except UNREACHABLE as exc:  # only an unreachable Valkey lets requests through
            self._down = True
            self._skip_until = time.monotonic() + self.settings.rate_limit_fail_open_retry_s
            self._fail_open(f"Valkey unreachable {type(exc).__name__}", f": {exc}"[:300])
            return
        except Exception as exc:  # Valkey answered with an error: refuse, never allow-all
            self._down = False
            problem, detail = f"Valkey error {type(exc).__name__}", f": {exc}"[:300]
            FAILED_CLOSED.inc()
            self._not_enforcing(problem, "fail closed", detail)
            raise ServiceUnavailable(
                "Rate limits cannot be checked; retry later", retry_after=FAILED_RETRY_AFTER_S
            ) from None
        self._down = False
        self._enforcing()
        window = binding(windows)
        headers = headers_of(window)
        request.ctx.rate_limit_headers = headers
        if not window.allowed:
            RATE_LIMITED.labels(category, window.scope).inc()
            raise RateLimited(
                f"Rate limit exceeded for {_WHAT[category]}: {window.limit} per minute "
                f"per {window.scope}",
                retry_after=math.floor(window.retry_after_s) + 1,
                headers=headers,
            )

    async def add_headers(self, request: ApiRequest, response: BaseHTTPResponse) -> None:
        headers: dict[str, str] | None = getattr(request.ctx, "rate_limit_headers", None)
        if headers:
            response.headers.update(headers)


def register(app: App) -> None:
    """Install the limits; RATE_LIMIT_ENABLED=false installs nothing at all (benchmarks)."""
    settings = app.ctx.settings
    if not settings.rate_limit_enabled:
        return
    guard = Guard(settings)
    app.before_server_start(guard.open)
    app.after_server_stop(guard.close)
    app.middleware(guard.check, "request")
    app.middleware(guard.add_headers, "response")


def count_network_limited() -> None:
    """A vote refused by the per-network cap: counted with the limiter's own refusals."""
    RATE_LIMITED.labels(VOTE, NETWORK).inc()
