"""Builds and their votes (one vote per build per session and per player, rating 1-5, cascade
on delete)."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model

SESSION_ID_LENGTH = 29  # "sess_" + 24 hex
PLAYER_ID_LENGTH = 128  # a token's `sub` (service.contract.players.PLAYER_ID_MAX)
DISPLAY_NAME_LENGTH = 64
NETWORK_LENGTH = 64  # "ffff:ffff:ffff::/48", "255.255.255.0/24", or a non-IP peer, cut


class Build(Model):
    build_id = fields.CharField(pk=True, max_length=10)
    name = fields.CharField(max_length=100)
    description = fields.CharField(max_length=2000, null=True)
    primary_archetype = fields.CharField(max_length=16)
    secondary_archetype = fields.CharField(max_length=16)
    class_name = fields.CharField(max_length=32)
    race = fields.CharField(max_length=16)
    is_public = fields.BooleanField(default=True)
    is_template = fields.BooleanField(default=False)
    # NULL for official templates: no session owns them.
    owner_session = fields.CharField(max_length=SESSION_ID_LENGTH, null=True)
    # Set for a build created (or claimed) with a bearer token: the player owns it from every
    # device, and owner_session no longer decides. Never shown; creator_name is.
    owner_player = fields.CharField(max_length=PLAYER_ID_LENGTH, null=True)
    creator_name = fields.CharField(max_length=DISPLAY_NAME_LENGTH, null=True)
    # Incremented in SQL by the vote aggregator under the row lock (never in Python);
    # `python -m service reconcile-tallies` recounts them from build_votes.
    rating_sum = fields.IntField(default=0)
    vote_count = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Set explicitly (one timestamp shared with created_at on insert, now() on each edit),
    # so a new build's created_at and updated_at are equal rather than microseconds apart.
    updated_at = fields.DatetimeField(auto_now_add=True)

    votes: fields.ReverseRelation[BuildVote]

    class Meta:
        table = "builds"
        constraints = (
            CheckConstraint(check="rating_sum >= 0 AND vote_count >= 0", name="builds_tally_ck"),
        )
        # Every list sort ends with build_id, the unique tie-break; btree scans backwards
        # for the descending orders. Equality filters get their own indexes.
        indexes = (
            Index(fields=("is_public", "created_at", "build_id"), name="builds_newest_idx"),
            Index(
                fields=("is_public", "vote_count", "created_at", "build_id"),
                name="builds_popular_idx",
            ),
            Index(fields=("primary_archetype",), name="builds_primary_idx"),
            Index(fields=("secondary_archetype",), name="builds_secondary_idx"),
            Index(fields=("race",), name="builds_race_idx"),
            Index(fields=("class_name",), name="builds_class_idx"),
            Index(fields=("is_template",), name="builds_template_idx"),
            Index(fields=("owner_session",), name="builds_owner_idx"),
            Index(fields=("owner_player",), name="builds_owner_player_idx"),
        )


class BuildVote(Model):
    id = fields.BigIntField(pk=True)
    build: fields.ForeignKeyRelation[Build] = fields.ForeignKeyField(
        "models.Build", related_name="votes", on_delete=fields.CASCADE, source_field="build_id"
    )
    session_id = fields.CharField(max_length=SESSION_ID_LENGTH)
    # The voting player when a bearer token was sent: one vote per player per build too.
    player_id = fields.CharField(max_length=PLAYER_ID_LENGTH, null=True)
    rating = fields.SmallIntField()
    created_at = fields.DatetimeField(auto_now_add=True)
    # The voter's client network (IPv4 /24, IPv6 /48; service.http.client_ip.source_network):
    # at most VOTES_PER_NETWORK votes per build per 24 h, and popular builds count each
    # network once. NULL for votes cast before it was recorded (each counts as its own).
    source_network = fields.CharField(max_length=NETWORK_LENGTH, null=True)

    class Meta:
        table = "build_votes"
        unique_together = (("build", "session_id"), ("build", "player_id"))
        constraints = (
            CheckConstraint(check="rating BETWEEN 1 AND 5", name="build_votes_rating_ck"),
        )
        indexes = (
            Index(fields=("created_at", "build_id", "rating"), name="build_votes_period_idx"),
            # build_votes_rank_idx (created_at, build_id, source_network, rating, id) is
            # created by migration 3 by hand: popular builds per voting network, index-only.
            # The per-network cap: this build's votes from this network in the last 24 h.
            Index(
                fields=("build_id", "source_network", "created_at"),
                name="build_votes_network_idx",
            ),
        )
