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
    batch_id = fields.UUIDField()

    class Meta:
        table = "search_events"
        indexes = (
            Index(fields=("created_at",), name="search_events_created_idx"),
            Index(fields=("batch_id",), name="search_events_batch_idx"),
        )


class SearchRollup(Model):
    """Searches per (normalised query, mode, hour); `count` only ever grows by batches."""

    id = fields.BigIntField(pk=True)
    hour = fields.DatetimeField()
    query_norm = fields.CharField(max_length=500)
    search_mode = fields.CharField(max_length=8)
    count = fields.BigIntField(default=0)
    sessions = fields.IntField(default=0)

    class Meta:
        table = "search_rollups"
        unique_together = (("hour", "query_norm", "search_mode"),)
        indexes = (Index(fields=("hour", "search_mode"), name="search_rollups_hour_idx"),)


class SearchRollupSession(Model):
    """Which sessions searched a key in an hour: exact distinct-session counts per window."""

    id = fields.BigIntField(pk=True)
    hour = fields.DatetimeField()
    query_norm = fields.CharField(max_length=500)
    search_mode = fields.CharField(max_length=8)
    session_id = fields.CharField(max_length=29)

    class Meta:
        table = "search_rollup_sessions"
        unique_together = (("hour", "query_norm", "search_mode", "session_id"),)


class FlushLog(Model):
    """One row per committed analytics batch: a retried batch is recognised and skipped."""

    batch_id = fields.UUIDField(pk=True)
    events = fields.IntField()
    flushed_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "flush_log"
