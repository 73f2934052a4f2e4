"""Tortoise ORM models; every table of the service. Imports nothing else of ours."""

from models.analytics import FlushLog, HiddenQuery, SearchEvent, SearchRollup, SearchZeroQuery
from models.builds import Build, BuildVote
from models.feedback import Feedback, FeedbackDaily, FeedbackQuery, FeedbackRollup

__all__ = [
    "Build",
    "BuildVote",
    "Feedback",
    "FeedbackDaily",
    "FeedbackQuery",
    "FeedbackRollup",
    "FlushLog",
    "HiddenQuery",
    "SearchEvent",
    "SearchRollup",
    "SearchZeroQuery",
]
