"""Request and response models (msgspec): they validate input and document the API."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from service.contract.errors import Problem, ValidationFailed
from service.contract.gamedata import ARCHETYPES, RACES
from service.contract.text import problem_of

SearchMode = Literal["quick", "smart", "deep"]
Sort = Literal["newest", "rating", "popular"]
Period = Literal["day", "week", "month", "all"]

_ARCHETYPE_DOC = "One of " + ", ".join(ARCHETYPES) + " (case-insensitive)."
_RACE_DOC = "One of " + ", ".join(RACES) + " (case-insensitive)."

# The documented enums are the lowercase keys; validation (check()) also takes any case.
Archetype = Annotated[
    str,
    Meta(max_length=32, description=_ARCHETYPE_DOC, extra_json_schema={"enum": list(ARCHETYPES)}),
]
Race = Annotated[
    str, Meta(max_length=32, description=_RACE_DOC, extra_json_schema={"enum": list(RACES)})
]
BuildId = Annotated[str, Meta(pattern=r"^b_[0-9a-f]{8}$")]
MAX_PAGE = 2**31 - 1
SEARCH_MIN_ALNUM = 3


def _raise(problems: list[Problem]) -> None:
    if problems:
        first = problems[0]
        raise ValidationFailed(f"{first['field']}: {first['problem']}", details=problems)


def _key(
    value: str,
    field: str,
    allowed: tuple[str, ...] | dict[str, str],
    problems: list[Problem],
) -> str:
    key = value.strip().lower()
    if key not in allowed:
        problems.append({"field": field, "problem": f"unknown value {value!r}"})
    return key


def _text(value: str, field: str, problems: list[Problem], *, multiline: bool = False) -> bool:
    """The contract's "Text fields" rules (service.contract.text); False when broken."""
    problem = problem_of(value, multiline=multiline)
    if problem is not None:
        problems.append({"field": field, "problem": problem})
    return problem is None


def _name(value: str, problems: list[Problem]) -> str:
    name = value.strip()
    if not 1 <= len(name) <= 100:
        problems.append({"field": "name", "problem": "must be 1-100 characters after trimming"})
    else:
        _text(name, "name", problems)
    return name


def _description(value: str | None, problems: list[Problem]) -> str | None:
    if value is None:
        return None
    if len(value) > 2000:
        problems.append({"field": "description", "problem": "must be at most 2000 characters"})
    elif value.strip():  # a blank description clears it (null), as before
        _text(value, "description", problems, multiline=True)
    return value.strip() or None


# ---- builds -------------------------------------------------------------------------------


class BuildCreate(Struct, kw_only=True):
    name: Annotated[str, Meta(description="1-100 characters after trimming")]
    primary_archetype: Archetype
    secondary_archetype: Archetype
    race: Race
    description: Annotated[str, Meta(max_length=2000)] | None = None
    is_public: bool = True

    def check(self) -> None:
        problems: list[Problem] = []
        self.name = _name(self.name, problems)
        self.description = _description(self.description, problems)
        self.primary_archetype = _key(
            self.primary_archetype, "primary_archetype", ARCHETYPES, problems
        )
        self.secondary_archetype = _key(
            self.secondary_archetype, "secondary_archetype", ARCHETYPES, problems
        )
        self.race = _key(self.race, "race", RACES, problems)
        _raise(problems)


class BuildPatch(Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(description="1-100 characters after trimming")] | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=2000)] | UnsetType | None = UNSET
    is_public: bool | UnsetType = UNSET

    def check(self) -> None:
        problems: list[Problem] = []
        if self.name is not UNSET:
            self.name = _name(self.name, problems)
        if self.description is not UNSET:
            self.description = _description(self.description, problems)
        _raise(problems)

    def changes(self) -> dict[str, object]:
        return {
            name: getattr(self, name)
            for name in self.__struct_fields__
            if getattr(self, name) is not UNSET
        }


class BuildListQuery(Struct, kw_only=True):
    # Bounded so (page - 1) * limit always fits Postgres' OFFSET (bigint).
    page: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 1
    limit: Annotated[int, Meta(ge=1, le=100)] = 20
    class_name: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    primary_archetype: Archetype | None = None
    secondary_archetype: Archetype | None = None
    race: Race | None = None
    search: (
        Annotated[
            str,
            Meta(
                min_length=3,
                max_length=100,
                description=f"Case-insensitive substring of name, description or class name; "
                f"at least {SEARCH_MIN_ALNUM} letters or digits.",
            ),
        ]
        | None
    ) = None
    is_template: bool | None = None
    sort: Sort = "newest"

    def check(self) -> None:
        problems: list[Problem] = []
        if self.search is not None and sum(c.isalnum() for c in self.search) < SEARCH_MIN_ALNUM:
            # Fewer characters than a trigram: no index can answer it (a sequential scan).
            problems.append(
                {
                    "field": "search",
                    "problem": f"must contain at least {SEARCH_MIN_ALNUM} letters or digits",
                }
            )
        if self.primary_archetype is not None:
            self.primary_archetype = _key(
                self.primary_archetype, "primary_archetype", ARCHETYPES, problems
            )
        if self.secondary_archetype is not None:
            self.secondary_archetype = _key(
                self.secondary_archetype, "secondary_archetype", ARCHETYPES, problems
            )
        if self.race is not None:
            self.race = _key(self.race, "race", RACES, problems)
        _raise(problems)


class PopularBuildsQuery(Struct, kw_only=True):
    period: Period = "week"
    limit: Annotated[int, Meta(ge=1, le=20)] = 5
    include_templates: bool = False


class Creator(Struct, kw_only=True):
    """Who made a build: a player's display name (is_authenticated), "anonymous" or
    "MyAshes Official". Never the player id."""

    display_name: str
    is_authenticated: bool


class Build(Struct, kw_only=True):
    build_id: BuildId
    name: str
    description: str | None
    primary_archetype: str
    secondary_archetype: str
    class_name: str
    race: str
    is_public: bool
    is_template: bool
    share_url: str
    created_at: str
    updated_at: str
    rating: float | None
    vote_count: int
    created_by: Annotated[str, Meta(description="= creator.display_name")]
    creator: Creator


class BuildListItem(Struct, kw_only=True):
    build_id: BuildId
    name: str
    description: str | None
    primary_archetype: str
    secondary_archetype: str
    class_name: str
    race: str
    rating: float | None
    vote_count: int
    is_template: bool
    created_by: Annotated[str, Meta(description="= creator.display_name")]
    creator: Creator
    created_at: str


class BuildList(Struct, kw_only=True):
    builds: list[BuildListItem]
    total: Annotated[int, Meta(description="Exact up to 10,000 matches, then 10,000")]
    total_capped: Annotated[bool, Meta(description="True when more than 10,000 builds match")]
    page: int
    limit: int
    has_more: bool


class TemplateList(Struct, kw_only=True):
    templates: list[Build]
    count: int


class PopularBuilds(Struct, kw_only=True):
    builds: list[BuildListItem]
    period: Period
    count: int


class BuildDeleted(Struct, kw_only=True):
    build_id: BuildId
    deleted: bool
    message: str


# ---- players (bearer tokens) --------------------------------------------------------------


class PlayerOut(Struct, kw_only=True):
    display_name: str


class AuthStatus(Struct, kw_only=True):
    authenticated: bool
    player: PlayerOut | None
    roles: list[str]


class Jwk(Struct, kw_only=True):
    kty: str
    kid: str
    alg: str
    use: str
    crv: str | None = None
    x: str | None = None


class Jwks(Struct, kw_only=True):
    keys: list[Jwk]


class Claimed(Struct, kw_only=True):
    claimed: Annotated[int, Meta(ge=0, description="anonymous builds of this session moved")]


# ---- votes --------------------------------------------------------------------------------


class VoteIn(Struct, kw_only=True):
    rating: Annotated[int, Meta(ge=1, le=5, description="Integer 1-5 (not bool/float/string)")]


class VoteOut(Struct, kw_only=True):
    build_id: BuildId
    your_rating: int
    avg_rating: float
    vote_count: int


# ---- feedback -----------------------------------------------------------------------------


class FeedbackIn(Struct, kw_only=True):
    query: Annotated[str, Meta(min_length=1, max_length=1000)]
    response_snippet: Annotated[
        str, Meta(min_length=1, description="Cut to 500 characters when longer")
    ]
    search_mode: SearchMode
    rating: Literal["up", "down"]
    comment: Annotated[str, Meta(max_length=1000)] | None = None

    def check(self) -> None:
        if not self.query.strip():
            raise ValidationFailed.field("query", "must not be blank")
        problems: list[Problem] = []
        _text(self.query, "query", problems)
        _text(self.response_snippet, "response_snippet", problems, multiline=True)
        if self.comment is not None and self.comment.strip():
            _text(self.comment, "comment", problems, multiline=True)
        elif self.comment is not None:
            self.comment = None  # blank: no comment (as a blank description clears it)
        _raise(problems)
        self.response_snippet = self.response_snippet[:500]


class FeedbackOut(Struct, kw_only=True):
    feedback_id: Annotated[str, Meta(pattern=r"^f_[0-9a-f]{8}$")]
    received_at: str


# ---- search analytics ---------------------------------------------------------------------


class SearchEventIn(Struct, kw_only=True):
    query: Annotated[str, Meta(min_length=1, max_length=500)]
    search_mode: SearchMode
    result_count: Annotated[int, Meta(ge=0, le=2**31 - 1)]

    def check(self) -> None:
        problem = problem_of(self.query)
        if problem is not None:
            raise ValidationFailed.field("query", problem)


class Recorded(Struct, kw_only=True):
    recorded: bool


class PopularQueriesQuery(Struct, kw_only=True):
    days: Annotated[int, Meta(ge=1, le=90)] = 7
    limit: Annotated[int, Meta(ge=1, le=50)] = 10
    search_mode: SearchMode | None = None


class PopularQuery(Struct, kw_only=True):
    query: str
    count: int
    sessions: int
    sources: Annotated[int, Meta(description="Distinct client networks (IPv4 /24, IPv6 /48)")]
    search_mode: SearchMode


class PopularQueries(Struct, kw_only=True):
    queries: list[PopularQuery]
    period_days: int


# ---- admin: hidden queries ----------------------------------------------------------------


class HiddenQuery(Struct, kw_only=True):
    query: Annotated[str, Meta(description="The normalised query")]
    hidden: bool
    hidden_by: Annotated[str | None, Meta(description="Display name of the admin")] = None
    hidden_at: str | None = None


class HiddenQueriesQuery(Struct, kw_only=True):
    # urlsafe base64 of a query (<= 500 characters, <= 2000 bytes of UTF-8)
    cursor: Annotated[str, Meta(max_length=2700, pattern=r"^[A-Za-z0-9_-]+$")] | None = None
    limit: Annotated[int, Meta(ge=1, le=100)] = 50


class HiddenQueryList(Struct, kw_only=True):
    items: list[HiddenQuery]
    next_cursor: str | None


# ---- health -------------------------------------------------------------------------------


class DependencyCheck(Struct, kw_only=True, omit_defaults=True):
    ok: bool
    latency_ms: float | None
    error: str | None = None


class AggregatorStatus(Struct, kw_only=True):
    buffered: int
    last_flush_age_s: float | None


class RateLimitStatus(Struct, kw_only=True, omit_defaults=True):
    enforced: Annotated[
        bool | None,
        Meta(description="false: the limiter fails open or closed (degraded); null: limits off"),
    ]
    error: str | None = None


class HealthChecks(Struct, kw_only=True):
    postgres: DependencyCheck
    valkey: DependencyCheck
    aggregators: AggregatorStatus
    rate_limits: RateLimitStatus


class Health(Struct, kw_only=True):
    status: Literal["ok", "degraded", "down"]
    version: str
    uptime_seconds: float
    checks: HealthChecks


class Status(Struct, kw_only=True):
    status: str


# ---- errors -------------------------------------------------------------------------------


class ProblemOut(Struct):
    field: str
    problem: str


class Error(Struct, kw_only=True, omit_defaults=True):
    error: str
    message: str
    status: int
    details: list[ProblemOut] | None = None


encode = msgspec.json.Encoder().encode
