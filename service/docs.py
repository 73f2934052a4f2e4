"""OpenAPI documentation from the same msgspec models that validate requests (sanic-ext)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from sanic_ext.extensions.openapi import openapi
from sanic_ext.extensions.openapi.definitions import Component, Parameter

from service import schemas

F = TypeVar("F", bound=Callable[..., Any])

ERROR_DESCRIPTIONS = {
    400: "session_required: a vote needs a valid X-Session-ID",
    403: "not_owner or template_read_only",
    404: "build_not_found (unknown id, or another session's private build)",
    409: "already_voted",
    413: "payload_too_large",
    422: "validation_error (bad body or query, malformed JSON, wrong content type)",
    429: "rate_limited (see Retry-After and X-RateLimit-* headers)",
    503: "service_unavailable (see Retry-After)",
}
COMMON_ERRORS = (413, 429, 500)


def _json(model: type[Any]) -> dict[str, Any]:
    return {"application/json": Component(model)}


def query_parameters(model: type[msgspec.Struct]) -> list[Parameter]:
    """One OpenAPI query parameter per field of a msgspec query model."""
    _, components = msgspec.json.schema_components(
        [model], ref_template="#/components/schemas/{name}"
    )
    definition = components[model.__name__]
    required = set(definition.get("required", ()))
    params = []
    for name, prop in definition["properties"].items():
        # Optional fields appear as anyOf [X, null]: a query parameter is simply absent.
        options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        prop_schema = dict(options[0]) if len(options) == 1 else {"anyOf": options}
        for key in ("default", "description"):
            if key in prop:
                prop_schema[key] = prop[key]
        # sanic-ext serialises a dict schema as given (its annotation says type | Schema).
        as_schema: Any = prop_schema
        params.append(Parameter(name, as_schema, "query", required=name in required))
    return params


def doc(
    *,
    ok: tuple[int, type[Any]],
    body: type[Any] | None = None,
    query: type[msgspec.Struct] | None = None,
    errors: tuple[int, ...] = (),
    summary: str | None = None,
) -> Callable[[F], F]:
    """Document a handler: success body, error bodies, request body and query parameters."""

    def wrap(func: F) -> F:
        status, model = ok
        func = openapi.response(status, _json(model), "Success")(func)
        for code in sorted({*errors, *COMMON_ERRORS}):
            description = ERROR_DESCRIPTIONS.get(code, "internal_error")
            func = openapi.response(code, _json(schemas.Error), description)(func)
        if body is not None:
            func = openapi.body(_json(body), required=True)(func)
        for param in query_parameters(query) if query is not None else ():
            func = openapi.parameter(parameter=param)(func)
        func = openapi.parameter(
            "X-Session-ID", str, "header", description="Session id (sess_ + 24 hex)"
        )(func)
        if summary or func.__doc__:
            func = openapi.summary(summary or (func.__doc__ or "").strip())(func)
        return func

    return wrap
