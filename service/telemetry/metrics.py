"""Prometheus metrics of the service, correct across Sanic workers (prometheus_client multiprocess).

`python -m service run` exports PROMETHEUS_MULTIPROC_DIR before the workers import
prometheus_client, so every worker writes its values to mmap files there and a scrape of any
worker merges all of them (any metric defined anywhere in the process is included). Gauges
use live* modes: a stopped worker's files are dropped (`multiprocess.mark_process_dead`), so
a restart never double counts. Without the variable (in-process tests) the default registry
is rendered as it is.

Hot path: requests and searches are tallied in plain ints and moved into the shared series
by the worker's sync (service.telemetry.worker_metrics: every second, before a scrape, at
stop), like the aggregators' own counts.
"""

from __future__ import annotations

import contextlib
import os
import re
import weakref
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from service.contract.gamedata import FEEDBACK_RATINGS, SEARCH_MODES
from service.telemetry.tallies import HttpTally, Tally

# prometheus_client chose its value class from this variable when it was imported (above).
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# `_created` series exist only per process; multiprocess output has none: same output both ways.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FLUSH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
METHODS = frozenset({"GET", "POST", "PATCH", "DELETE", "OPTIONS", "HEAD", "PUT"})
# Status classes the dashboard and the alerts select on: exported as 0 for every route from
# the start, so an error ratio reads 0 (not "no data") and rate() sees the first 5xx.
STATUS_CLASSES = ("2xx", "4xx", "5xx")
AGGREGATORS = ("search", "votes")
VOTE_OUTCOMES = ("accepted", "duplicate", "not_found", "network_limited")

# ---- HTTP -----------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "myashes_http_requests_total",
    "HTTP requests by method, route template and status class (unknown routes: unmatched)",
    ["method", "route", "status_class"],
)
HTTP_DURATION = Histogram(
    "myashes_http_request_duration_seconds",
    "HTTP request latency from the first middleware to the response, by method and route",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "myashes_http_requests_in_flight",
    "Requests being handled (sampled by each worker every second and at scrape)",
    multiprocess_mode="livesum",
)
WORKERS = Gauge("myashes_workers", "Live Sanic workers serving", multiprocess_mode="livesum")

# ---- Aggregators (DESIGN rule 10) -----------------------------------------------------------
AGG_ACCEPTED = Counter(
    "myashes_aggregator_events_accepted_total", "Events accepted into a buffer", ["aggregator"]
)
AGG_FLUSHED = Counter(
    "myashes_aggregator_events_flushed_total", "Events written durably", ["aggregator"]
)
AGG_REJECTED = Counter(
    "myashes_aggregator_events_rejected_total",
    "Events refused because the buffer was full (answered 503)",
    ["aggregator"],
)
AGG_FLUSH_FAILURES = Counter(
    "myashes_aggregator_flush_failures_total", "Flush attempts that failed", ["aggregator"]
)
AGG_FLUSH_DURATION = Histogram(
    "myashes_aggregator_flush_duration_seconds",
    "Duration of successful flushes",
    ["aggregator"],
    buckets=FLUSH_BUCKETS,
)
AGG_DEPTH = Gauge(
    "myashes_aggregator_buffer_depth",
    "Events accepted but not yet durable (buffered + being written)",
    ["aggregator"],
    multiprocess_mode="livesum",
)
AGG_CAPACITY = Gauge(
    "myashes_aggregator_buffer_capacity",
    "Buffer bound of one worker in events (503 beyond it)",
    ["aggregator"],
    multiprocess_mode="livemax",
)
AGG_FILL = Gauge(
    "myashes_aggregator_buffer_fill_ratio",
    "How full the fullest worker's buffer is: max(events / event cap, bytes / byte cap); "
    "at 1 it answers 503",
    ["aggregator"],
    multiprocess_mode="livemax",
)
AGG_PENDING_AGE = Gauge(
    "myashes_aggregator_oldest_pending_age_seconds",
    "Age of the oldest event accepted but not yet durable (0 when none is pending); "
    "the oldest over workers",
    ["aggregator"],
    multiprocess_mode="livemax",
)
AGG_FLUSH_INTERVAL = Gauge(
    "myashes_aggregator_flush_interval_seconds",
    "Configured flush interval",
    ["aggregator"],
    multiprocess_mode="livemax",
)

# ---- Business ------------------------------------------------------------------------------
BUILDS_CREATED = Counter("myashes_builds_created_total", "Builds created")
VOTES = Counter("myashes_votes_total", "Votes by outcome", ["outcome"])
FEEDBACK = Counter("myashes_feedback_total", "Feedback received by rating", ["rating"])
SEARCHES = Counter(
    "myashes_searches_recorded_total", "Search analytics events recorded, by mode", ["mode"]
)

# Tally check (aggregators/tallies.py): the last check's result, from whichever worker ran it.
TALLY_DRIFT = Gauge(
    "myashes_tally_drift",
    "Builds whose rating_sum/vote_count differed from a recount of build_votes at the last "
    "tally check (repaired by it; must be 0)",
    multiprocess_mode="mostrecent",
)
TALLY_DRIFT_FOUND = Counter(
    "myashes_tally_drift_found",
    "Builds the periodic tally checks found drifted (each repaired by the check that found it)",
)
TALLY_CHECKED_AT = Gauge(
    "myashes_tally_last_check_timestamp_seconds",
    "When the last tally check finished (Unix time)",
    multiprocess_mode="mostrecent",
)

# ---- Dependencies --------------------------------------------------------------------------
DEPENDENCY_UP = Gauge(
    "myashes_dependency_up",
    "1 when the last background check of the dependency succeeded (most recent check wins)",
    ["dependency"],
    multiprocess_mode="livemostrecent",
)
DEPENDENCY_CHECK_DURATION = Gauge(
    "myashes_dependency_check_duration_seconds",
    "Duration of the last background check of the dependency",
    ["dependency"],
    multiprocess_mode="livemostrecent",
)
DB_POOL_IN_USE = Gauge(
    "myashes_db_pool_connections_in_use",
    "PostgreSQL connections checked out of the pools",
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "myashes_db_pool_connections_max", "PostgreSQL pool size limits", multiprocess_mode="livesum"
)

# Requests being handled in this process; weak, so a cancelled request drops out by itself.
INFLIGHT: weakref.WeakSet[Any] = weakref.WeakSet()


http = HttpTally(HTTP_REQUESTS, HTTP_DURATION, METHODS)
searches = Tally(SEARCHES, SEARCH_MODES)


def vote(outcome: str) -> None:
    VOTES.labels(outcome).inc()


def feedback(rating: str) -> None:
    FEEDBACK.labels(rating).inc()


def tally_check(drift: int) -> None:
    TALLY_DRIFT.set(drift)
    TALLY_DRIFT_FOUND.inc(drift)
    TALLY_CHECKED_AT.set_to_current_time()


def init_series() -> None:
    """Create every known label set, so each series is exported (as 0) from the start."""
    for name in AGGREGATORS:
        for family in (AGG_ACCEPTED, AGG_FLUSHED, AGG_REJECTED, AGG_FLUSH_FAILURES):
            family.labels(name)
        AGG_FLUSH_DURATION.labels(name)
    for outcome in VOTE_OUTCOMES:
        VOTES.labels(outcome)
    for rating in FEEDBACK_RATINGS:
        FEEDBACK.labels(rating)
    searches.init_series()


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")


def prune_dead_processes(directory: str) -> None:
    """Drop the live gauges of workers that died without stopping (killed, crashed)."""
    pids = {int(m[1]) for p in Path(directory).iterdir() if (m := _LIVE_FILE.fullmatch(p.name))}
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_dead(pid)
        except PermissionError:
            continue  # exists, owned by someone else


def mark_dead(pid: int) -> None:
    if MULTIPROC_DIR is not None:
        with contextlib.suppress(FileNotFoundError):
            multiprocess.mark_process_dead(pid, MULTIPROC_DIR)  # type: ignore[no-untyped-call]


def render() -> bytes:
    """The text exposition: all workers' files merged, or this process's default registry."""
    if MULTIPROC_DIR is None:
        return generate_latest(REGISTRY)
    prune_dead_processes(MULTIPROC_DIR)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, MULTIPROC_DIR)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
