"""Thumbs up/down on AI answers (with the session and the admin review), and their daily rollups."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

REVIEW_STATUSES = ("new", "reviewed", "resolved")


class Feedback(Model):
    feedback_id = fields.CharField(pk=True, max_length=10)
    query = fields.CharField(max_length=1000)
    # normalise_query(query): what patterns group by and find sample comments through.
    query_norm = fields.CharField(max_length=500, default="")
    response_snippet = fields.CharField(max_length=500)
    search_mode = fields.CharField(max_length=8)
    rating = fields.CharField(max_length=4)
    comment = fields.CharField(max_length=1000, null=True)
    session_id = fields.CharField(max_length=29)
    received_at = fields.DatetimeField(auto_now_add=True)
    # Admin review: who (display name shown, player id kept for the record) and when.
    status = fields.CharField(max_length=8, default="new")
    note = fields.CharField(max_length=1000, null=True)
    reviewed_by = fields.CharField(max_length=64, null=True)
    reviewed_by_player = fields.CharField(max_length=128, null=True)
    reviewed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "feedback"
        constraints = (
            CheckConstraint(check="rating IN ('up', 'down')", name="feedback_rating_ck"),
            CheckConstraint(
                check="search_mode IN ('quick', 'smart', 'deep')", name="feedback_mode_ck"
            ),
            CheckConstraint(
                check="status IN ('new', 'reviewed', 'resolved')", name="feedback_status_ck"
            ),
        )
        # Admin lists page by (received_at, feedback_id) descending; an equality filter
        # leads its own index. By hand in migration 4: trigram indexes for text search (q)
        # and the thumbs-down comments per normalised query (patterns' sample comments).
        indexes = (
            Index(fields=("received_at", "rating"), name="feedback_received_idx"),
            Index(fields=("received_at", "feedback_id"), name="feedback_page_idx"),
            Index(fields=("status", "received_at", "feedback_id"), name="feedback_status_idx"),
            Index(fields=("rating", "received_at", "feedback_id"), name="feedback_rating_idx"),
            Index(fields=("search_mode", "received_at", "feedback_id"), name="feedback_mode_idx"),
        )


class FeedbackRollup(Model):
    """Feedback per (UTC day, mode, normalised query, rating), kept in the insert's transaction.

    key_hash = hashtextextended(day || query_norm || mode || rating) (see
    service.insights.feedback_store); `sessions` = distinct sessions of that key. The sessions
    behind it live in `feedback_rollup_sessions` (key_hash, session_hash), created by the
    migration like search_rollup_sessions (no ORM model: two-column primary key).
    """

    id = fields.BigIntField(pk=True)
    key_hash = fields.BigIntField(unique=True)
    day = fields.DateField()
    query_norm = fields.CharField(max_length=500)
    search_mode = fields.CharField(max_length=8)
    rating = fields.CharField(max_length=4)
    count = fields.BigIntField(default=0)
    sessions = fields.IntField(default=0)
    last_at = fields.DatetimeField()

    class Meta:
        table = "feedback_rollups"
        # By hand in migration 4: feedback_rollups_query_idx (query_norm, day) INCLUDE (rating,
        # count, sessions, last_at), the covering index long-window patterns read.
        indexes = (Index(fields=("day", "rating"), name="feedback_rollups_day_idx"),)


class FeedbackQuery(Model):
    """All-time feedback per normalised query, kept in the insert's transaction: the upper
    bound with which patterns over a long window prune their candidates (see
    service.insights.reports)."""

    id = fields.BigIntField(pk=True)
    query_norm = fields.CharField(max_length=500, unique=True)
    down = fields.BigIntField(default=0)
    up = fields.BigIntField(default=0)
    last_at = fields.DatetimeField()

    class Meta:
        table = "feedback_queries"
        indexes = (Index(fields=("down", "query_norm"), name="feedback_queries_down_idx"),)


class FeedbackDaily(Model):
    """Feedback per (UTC day, mode, rating): the summary's trend reads a few rows per day."""

    id = fields.BigIntField(pk=True)
    day = fields.DateField()
    search_mode = fields.CharField(max_length=8)
    rating = fields.CharField(max_length=4)
    count = fields.BigIntField(default=0)

    class Meta:
        table = "feedback_daily"
        unique_together = (("day", "search_mode", "rating"),)
