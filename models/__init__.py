"""Tortoise ORM models; every table of the service. Imports nothing else of ours."""

from models.analytics import FlushLog, HiddenQuery, SearchEvent, SearchRollup
from models.builds import Build, BuildVote
from models.feedback import Feedback

__all__ = [
    "Build",
    "BuildVote",
    "Feedback",
    "FlushLog",
    "HiddenQuery",
    "SearchEvent",
    "SearchRollup",
]
