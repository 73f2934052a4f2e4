"""The contract's value formats: timestamps (ISO 8601, UTC, with offset) and the rating average."""

from __future__ import annotations

from datetime import datetime


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def average(rating_sum: int, vote_count: int) -> float | None:
    """Average rating to one decimal, half up (4.25 -> 4.3); None without votes.

    Integer arithmetic, so exact: floor(10 * sum / count + 1/2) / 10.
    """
    if vote_count <= 0:
        return None
    return ((20 * rating_sum + vote_count) // (2 * vote_count)) / 10
