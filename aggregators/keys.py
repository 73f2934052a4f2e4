"""Every Valkey key name and TTL the service uses (one place, versioned prefix)."""

from __future__ import annotations

PREFIX = "myashes:v1"

# Rate-limit windows (service/http/rate_counter.py: <prefix>:<category>:<scope>:<amount>/
# <expiry>:<identity>[:prev]; each window key expires two windows after its first hit).
RATE_LIMIT_PREFIX = "myashes:rl"

# Read models rebuilt from Postgres (aggregators/views.py): a copy is served while younger
# than VIEW_FRESH_S (the freshness bound: a flushed search shows within it), refreshed in the
# background by one worker once VIEW_REFRESH_AFTER_S old, and kept VIEW_KEEP_S in Valkey.
VIEW_FRESH_S = 60
VIEW_REFRESH_AFTER_S = 30
VIEW_KEEP_S = 3600
VIEW_LOCK_TTL_S = 30  # one rebuild per view in the cluster at a time

# Popular search queries: top-N sorted set per (days, mode); the marker member's score is
# the time the set was built (and keeps an empty ranking distinguishable from a miss).
POPULAR_TOP_N = 50  # the largest `limit` the API accepts
POPULAR_BUILT_MARKER = "\x00built"
# Queries an admin has hidden (a set rebuilt from Postgres on every change, VIEW_KEEP_S TTL;
# the marker member tells an empty set from a missing one).
HIDDEN_QUERIES = f"{PREFIX}:hidden-queries"
HIDDEN_BUILT_MARKER = "\x00built"

# Rating summary per build: absolute rating_sum / vote_count from Postgres after each commit.
RATING_TTL_S = 7 * 24 * 3600

# Periodic tally check (aggregators/tallies.py): the worker that SETs this (NX, PX = the
# check interval) runs the cluster's check for that interval.
TALLY_CHECK_LEASE = f"{PREFIX}:lease:tally-check"


def popular_queries(days: int, mode: str | None) -> str:
    # v2: members carry the count, scores the sources and sessions (issue 17).
    return f"{PREFIX}:popular-queries:v2:{days}d:{mode or 'all'}"


def temporary(key: str, token: str) -> str:
    """Where a new copy of `key` is built before RENAME makes it live."""
    return f"{key}:tmp:{token}"


def popular_builds(period: str, include_templates: bool) -> str:
    return f"{PREFIX}:popular-builds:{period}:{'templates' if include_templates else 'players'}"


def view_lock(key: str) -> str:
    return f"{key}:lock"


def rating(build_id: str) -> str:
    return f"{PREFIX}:rating:{build_id}"


# Admin content gaps (service/insights/views.py): the top CONTENT_GAPS_TOP_N per window in days,
# a JSON copy rebuilt like the other views (fresh within POPULAR_CACHE_TTL_S).
CONTENT_GAPS_TOP_N = 100  # the largest `limit` the API accepts


def content_gaps(days: int) -> str:
    return f"{PREFIX}:content-gaps:{days}d"


# Admin feedback patterns: the same, per window in days (top PATTERNS_TOP_N).
PATTERNS_TOP_N = 100


def feedback_patterns(days: int) -> str:
    return f"{PREFIX}:feedback-patterns:{days}d"
