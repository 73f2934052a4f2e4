"""Thumbs up/down on AI answers, stored with the session that sent them."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model


class Feedback(Model):
    feedback_id = fields.CharField(pk=True, max_length=10)
    query = fields.CharField(max_length=1000)
    response_snippet = fields.CharField(max_length=500)
    search_mode = fields.CharField(max_length=8)
    rating = fields.CharField(max_length=4)
    comment = fields.CharField(max_length=1000, null=True)
    session_id = fields.CharField(max_length=29)
    received_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "feedback"
        constraints = (
            CheckConstraint(check="rating IN ('up', 'down')", name="feedback_rating_ck"),
            CheckConstraint(
                check="search_mode IN ('quick', 'smart', 'deep')", name="feedback_mode_ck"
            ),
        )
        indexes = (Index(fields=("received_at", "rating"), name="feedback_received_idx"),)
