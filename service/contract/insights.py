"""Admin insights models (msgspec): query strings and bodies they validate, the shapes returned.

Cursors are opaque to clients: base64url of "<received_at epoch microseconds>:<feedback id>".
Dates (`from`, `to`) are ISO 8601 dates (`to` inclusive: the whole day) or date-times (a
naive one is UTC); `from` after `to` is a 422.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType, field

from service.contract.errors import ValidationFailed
from service.contract.schemas import SearchMode
from service.contract.text import problem_of

Rating = Literal["up", "down"]
ReviewStatus = Literal["new", "reviewed", "resolved"]
FEEDBACK_ID = re.compile(r"f_[0-9a-f]{8}")
_CURSOR = re.compile(r"(-?[0-9]{1,19}):(f_[0-9a-f]{8})")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DateText = Annotated[str, Meta(max_length=40, description="ISO 8601 date or date-time")]


def _moment(value: str, name: str, *, end: bool) -> datetime:
    """A `from`/`to` value as an instant; a date `to` means the end of that day (exclusive)."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day + timedelta(days=1 if end else 0), time(), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed.field(name, "must be an ISO 8601 date or date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Cursor:
    received_at: datetime
    feedback_id: str

    def encode(self) -> str:
        micros = (self.received_at - EPOCH) // timedelta(microseconds=1)
        raw = f"{micros}:{self.feedback_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raw = ""
        match = _CURSOR.fullmatch(raw)
        if match is None:
            raise ValidationFailed.field("cursor", "is not a cursor this API returned")
        try:
            at = EPOCH + timedelta(microseconds=int(match[1]))
        except (OverflowError, OSError, ValueError):
            raise ValidationFailed.field("cursor", "is not a cursor this API returned") from None
        return cls(at, match[2])


class Window(Struct, kw_only=True):
    """`from`/`to` of a list or export, converted by check()."""

    from_: DateText | None = field(default=None, name="from")
    to: DateText | None = None

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        start = None if self.from_ is None else _moment(self.from_, "from", end=False)
        stop = None if self.to is None else _moment(self.to, "to", end=True)
        if start is not None and stop is not None and start >= stop:
            raise ValidationFailed.field("from", "must be before `to`")
        return start, stop

    def check(self) -> None:
        self.bounds()


class FeedbackListQuery(Window, kw_only=True):
    rating: Rating | None = None
    search_mode: SearchMode | None = None
    status: ReviewStatus | None = None
    q: (
        Annotated[
            str,
            Meta(
                min_length=3,
                max_length=200,
                description="Text in the query or the comment (case-insensitive)",
            ),
        ]
        | None
    ) = None
    cursor: Annotated[str, Meta(max_length=100)] | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 50

    def check(self) -> None:
        super().check()
        if self.q is not None:
            problem = problem_of(self.q)
            if problem is None and sum(ch.isalnum() for ch in self.q) < 3:
                problem = "must contain at least 3 letters or digits"
            if problem is not None:
                raise ValidationFailed.field("q", problem)
        if self.cursor is not None:
            Cursor.decode(self.cursor)


class ExportQuery(Window, kw_only=True):
    pass


class FeedbackItem(Struct, kw_only=True):
    id: str
    query: str
    snippet: str
    mode: SearchMode
    rating: Rating
    comment: str | None
    status: ReviewStatus
    note: str | None
    received_at: str
    reviewed_at: str | None
    reviewed_by: str | None


class FeedbackPage(Struct, kw_only=True):
    items: list[FeedbackItem]
    next_cursor: str | None


class ReviewIn(Struct, kw_only=True, forbid_unknown_fields=True):
    status: ReviewStatus | UnsetType = UNSET
    note: Annotated[str, Meta(max_length=1000)] | UnsetType | None = UNSET

    def check(self) -> None:
        if self.status is UNSET and self.note is UNSET:
            raise ValidationFailed.field("body", "send `status`, `note` or both")
        if isinstance(self.note, str):
            problem = problem_of(self.note, multiline=True)
            if problem is not None:
                raise ValidationFailed.field("note", problem)


class DaysQuery(Struct, kw_only=True):
    days: Annotated[int, Meta(ge=1, le=365)] = 7


class TopQuery(Struct, kw_only=True):
    days: Annotated[int, Meta(ge=1, le=365)] = 7
    limit: Annotated[int, Meta(ge=1, le=100)] = 20


class GapsQuery(Struct, kw_only=True):
    days: Annotated[int, Meta(ge=1, le=90)] = 7
    limit: Annotated[int, Meta(ge=1, le=100)] = 20


class Satisfaction(Struct, kw_only=True):
    up: int
    down: int
    satisfaction: float | None


class ByMode(Struct, kw_only=True):
    quick: Satisfaction
    smart: Satisfaction
    deep: Satisfaction


class DailyCount(Struct, kw_only=True):
    day: str
    search_mode: SearchMode
    up: int
    down: int


class Summary(Struct, kw_only=True):
    days: int
    totals: Satisfaction
    by_mode: ByMode
    daily: list[DailyCount]


class Pattern(Struct, kw_only=True):
    query: str
    down: int
    up: int
    down_rate: float
    sessions: int
    last_at: str
    sample_comments: list[str]


class Patterns(Struct, kw_only=True):
    items: list[Pattern]


class ContentGap(Struct, kw_only=True):
    query: str
    sessions: int
    count: int
    last_at: str


class ContentGaps(Struct, kw_only=True):
    items: list[ContentGap]


def satisfaction(up: int, down: int) -> Satisfaction:
    """up / (up + down), to 4 decimals; None when both are 0."""
    total = up + down
    return Satisfaction(up=up, down=down, satisfaction=round(up / total, 4) if total else None)
