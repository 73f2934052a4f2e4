"""Every Valkey key name and TTL the service uses (one place, versioned prefix)."""

from __future__ import annotations

PREFIX = "myashes:v1"

# Popular search queries: top-N sorted set per (days, mode), rebuilt from Postgres rollups.
POPULAR_TTL_S = 60  # freshness bound: a flushed search shows within this many seconds
POPULAR_TOP_N = 50  # the largest `limit` the API accepts
POPULAR_BUILT_MARKER = "\x00built"  # keeps an empty ranking distinguishable from a miss

# Rating summary per build: absolute rating_sum / vote_count from Postgres after each commit.
RATING_TTL_S = 7 * 24 * 3600


def popular_queries(days: int, mode: str | None) -> str:
    return f"{PREFIX}:popular-queries:{days}d:{mode or 'all'}"


def popular_queries_tmp(days: int, mode: str | None, token: str) -> str:
    return f"{popular_queries(days, mode)}:tmp:{token}"


def rating(build_id: str) -> str:
    return f"{PREFIX}:rating:{build_id}"
