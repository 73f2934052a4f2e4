"""Every error the API returns, as exceptions (code -> status); rendered by service.http.errors.

AppError subclasses (code -> status):
    ValidationFailed   validation_error    422
    SessionRequired    session_required    400
    AuthenticationFailed   authentication_failed   401  (WWW-Authenticate: invalid_token)
    AuthenticationRequired authentication_required 401  (WWW-Authenticate: Bearer)
    Forbidden          forbidden           403
    NotOwner           not_owner           403
    TemplateReadOnly   template_read_only  403
    BuildNotFound      build_not_found     404
    AlreadyVoted       already_voted       409
    RateLimited        rate_limited        429  (Retry-After)
    ServiceUnavailable service_unavailable 503  (Retry-After)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict


class Problem(TypedDict):
    field: str
    problem: str


class AppError(Exception):
    code = "internal_error"
    status = 500

    def __init__(
        self,
        message: str,
        *,
        details: list[Problem] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


class ValidationFailed(AppError):
    code, status = "validation_error", 422

    @classmethod
    def field(cls, field: str, problem: str) -> ValidationFailed:
        return cls(f"{field}: {problem}", details=[{"field": field, "problem": problem}])


class SessionRequired(AppError):
    code, status = "session_required", 400


class AuthenticationFailed(AppError):
    """A bearer token was sent and is not valid: never treated as anonymous (RFC 6750)."""

    code, status = "authentication_failed", 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class AuthenticationRequired(AppError):
    """The route needs a bearer token and none was sent."""

    code, status = "authentication_required", 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    """A valid token without the role the route needs (admin routes)."""

    code, status = "forbidden", 403


class NotOwner(AppError):
    code, status = "not_owner", 403


class TemplateReadOnly(AppError):
    code, status = "template_read_only", 403


class BuildNotFound(AppError):
    code, status = "build_not_found", 404

    def __init__(self, build_id: str) -> None:
        super().__init__(f"Build {build_id} not found")


class AlreadyVoted(AppError):
    code, status = "already_voted", 409


class RetryLater(AppError):
    """An error the client should retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int, **kwargs: Any) -> None:
        headers = {"Retry-After": str(max(1, retry_after)), **kwargs.pop("headers", {})}
        super().__init__(message, headers=headers, **kwargs)


class RateLimited(RetryLater):
    code, status = "rate_limited", 429


class ServiceUnavailable(RetryLater):
    code, status = "service_unavailable", 503
