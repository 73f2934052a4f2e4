"""Tortoise ORM models; every table of the service. Imports nothing else of ours."""

from models.analytics import FlushLog, SearchEvent, SearchRollup
from models.builds import Build, BuildVote
from models.feedback import Feedback, FeedbackDaily, FeedbackRollup

__all__ = [
    "Build",
    "BuildVote",
    "Feedback",
    "FeedbackDaily",
    "FeedbackRollup",
    "FlushLog",
    "SearchEvent",
    "SearchRollup",
]
