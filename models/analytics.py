"""Search analytics: raw events, hourly rollups with distinct sessions, the flush log."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class SearchEvent(Model):
    """One recorded search, as accepted by a worker (event time, not flush time)."""

    id = fields.BigIntField(pk=True)
    query = fields.CharField(max_length=500)
    query_norm = fields.CharField(max_length=500)
    search_mode = fields.CharField(max_length=8)
    result_count = fields.IntField()
    session_id = fields.CharField(max_length=29)
    created_at = fields.DatetimeField()
    batch_id = fields.UUIDField()  # the flush that wrote it (flush_log.batch_id)

    class Meta:
        table = "search_events"
        indexes = (Index(fields=("created_at",), name="search_events_created_idx"),)


class SearchRollup(Model):
    """Searches per (normalised query, mode, hour); `count` only ever grows by batches.

    key_hash = hashtextextended(hour-epoch/3600 || query_norm || mode): a narrow unique key
    that keeps the flush's upsert cheap. `sessions` = distinct sessions in that hour,
    `sources` = distinct client networks (IPv4 /24, IPv6 /48) in that hour.

    The sessions behind it live in `search_rollup_sessions` (key_hash, session_hash): a
    two-bigint primary key and nothing else, created by the migration and written only by
    the search aggregator's SQL, so it has no ORM model (Tortoise has no composite keys);
    the networks likewise in `search_rollup_sources` (key_hash, source_hash).
    """

    id = fields.BigIntField(pk=True)
    key_hash = fields.BigIntField(unique=True)
    hour = fields.DatetimeField()
    query_norm = fields.CharField(max_length=500)
    search_mode = fields.CharField(max_length=8)
    count = fields.BigIntField(default=0)
    sessions = fields.IntField(default=0)
    sources = fields.IntField(default=0)
    # Content gaps: the searches of this key that found nothing (result_count = 0) and their
    # distinct sessions (session rows under zero_key_hash, see aggregators/search.py).
    zero_count = fields.BigIntField(default=0)
    zero_sessions = fields.IntField(default=0)

    class Meta:
        table = "search_rollups"
        indexes = (Index(fields=("hour", "search_mode"), name="search_rollups_hour_idx"),)


class SearchZeroQuery(Model):
    """All-time searches without results per normalised query, written by the same flush:
    the upper bound with which content gaps prune their candidates."""

    id = fields.BigIntField(pk=True)
    query_norm = fields.CharField(max_length=500, unique=True)
    count = fields.BigIntField(default=0)
    last_at = fields.DatetimeField()

    class Meta:
        table = "search_zero_queries"
        indexes = (Index(fields=("count", "query_norm"), name="search_zero_queries_count_idx"),)


class HiddenQuery(Model):
    """A normalised query an admin has hidden: it never appears in popular queries."""

    query_norm = fields.CharField(pk=True, max_length=500)
    hidden_by = fields.CharField(max_length=64)  # the admin's display name
    hidden_at = fields.DatetimeField()

    class Meta:
        table = "hidden_queries"
        indexes = (Index(fields=("hidden_at", "query_norm"), name="hidden_queries_at_idx"),)


class FlushLog(Model):
    """One row per committed analytics batch: a retried batch is recognised and skipped."""

    batch_id = fields.UUIDField(pk=True)
    events = fields.IntField()
    flushed_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "flush_log"
