"""OpenAPI documentation from the same msgspec models that validate requests (sanic-ext).

`doc()` records, per handler, what sanic-ext's builder serves at /openapi.json and /docs:
request body, query/path/header parameters, every response with its body (errors in the one
contract shape) and headers (X-Session-ID, Retry-After, X-RateLimit-*), and links between
operations (a created build's id feeds get/patch/delete/vote) for stateful fuzzing.

sanic-ext writes an OpenAPI 3.0.3 document, while msgspec writes JSON Schema 2020-12; the
schemas are converted here (`anyOf [X, null]` -> `X, nullable: true`) when registered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import msgspec
from sanic_ext.extensions.openapi import openapi
from sanic_ext.extensions.openapi.builders import OperationStore, SpecificationBuilder
from sanic_ext.extensions.openapi.definitions import (
    MediaType,
    Parameter,
    Reference,
    Response,
)
from sanic_ext.extensions.openapi.types import Schema

from service.contract import schemas

F = TypeVar("F", bound=Callable[..., Any])

SESSION_PATTERN = r"^sess_[0-9a-f]{24}$"
BUILD_ID_PATTERN = r"^b_[0-9a-f]{8}$"
BEARER = "bearerAuth"
# Which bearer token a route reads: any API route reads one when sent (optional), some need
# one (player), admin routes need the admin role; None: the route ignores Authorization.
Auth = Literal["optional", "player", "admin"] | None
ERROR_DESCRIPTIONS = {
    400: "session_required: a vote needs a valid X-Session-ID",
    401: "authentication_failed: the bearer token is bad, expired or wrongly signed "
    '(WWW-Authenticate: Bearer error="invalid_token"); authentication_required: this needs '
    "a bearer token",
    403: "not_owner or template_read_only",
    404: "build_not_found (unknown id, or another session's private build)",
    409: "already_voted",
    413: "payload_too_large (body over the limit, 64 KiB by default)",
    422: "validation_error (bad body or query, malformed JSON, wrong content type)",
    429: "rate_limited: over a rate limit; retry after Retry-After seconds",
    500: "internal_error",
    503: "service_unavailable: a dependency is down or a buffer is full; see Retry-After",
}


def _schema(**fields: Any) -> Any:
    """A sanic-ext Schema serialised exactly as given (its constructor is untyped)."""
    return Schema(**fields)  # type: ignore[no-untyped-call]


def _operation(func: Any) -> Any:
    """sanic-ext's record of one handler's documentation."""
    return OperationStore()[func]  # type: ignore[no-untyped-call]


def _header(description: str, schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


_COUNT = {"type": "integer", "minimum": 0}
SESSION_HEADERS = {
    "X-Session-ID": _header(
        "The session in use: the one sent, or a freshly generated one",
        {"type": "string", "pattern": SESSION_PATTERN},
        required=True,
    )
}
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": _header(
        "Requests allowed per minute (the session's or the client IP's limit, whichever "
        "is closer to running out)",
        _COUNT,
        required=False,
    ),
    "X-RateLimit-Remaining": _header("Requests left in the window", _COUNT, required=False),
    "X-RateLimit-Reset": _header(
        "Seconds until the whole quota is available again", _COUNT, required=False
    ),
}
AUTH_HEADERS = {
    "WWW-Authenticate": _header(
        'Bearer error="invalid_token" for a bad token, Bearer when a token is needed',
        {"type": "string"},
        required=True,
    )
}
RETRY_HEADERS = {
    "Retry-After": _header(
        "Seconds to wait before retrying", {"type": "integer", "minimum": 1}, required=True
    )
}


def oas30(schema: Any) -> Any:
    """A JSON Schema 2020-12 fragment (msgspec) as an OpenAPI 3.0 schema object."""
    if isinstance(schema, list):
        return [oas30(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: oas30(value) for key, value in schema.items()}
    options = out.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" in rest[0]:
            out["allOf"] = rest  # no siblings next to $ref in 3.0
        elif len(rest) == 1:
            out = {**rest[0], **out}
        else:
            out["anyOf"] = rest
        out["nullable"] = True
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if out.get("required") == []:
        del out["required"]  # 3.0: a required list has at least one name
    return out


def component(model: type[Any]) -> Reference:
    """Register `model` (and the models it uses) as schema components; a $ref to it."""
    spec = SpecificationBuilder()
    _, definitions = msgspec.json.schema_components(
        [model], ref_template="#/components/schemas/{name}"
    )
    for name, definition in definitions.items():
        if not spec.has_component("schemas", name):
            spec.add_component("schemas", name, oas30(definition))
    return Reference(f"#/components/schemas/{model.__name__}")  # type: ignore[no-untyped-call]


def query_parameters(model: type[msgspec.Struct]) -> list[Parameter]:
    """One OpenAPI query parameter per field of a msgspec query model."""
    _, definitions = msgspec.json.schema_components(
        [model], ref_template="#/components/schemas/{name}"
    )
    definition = definitions[model.__name__]
    required = set(definition.get("required", ()))
    params = []
    for name, prop in definition["properties"].items():
        prop_schema = oas30(prop)
        # A query parameter that is absent is simply unset: "nullable" means nothing here.
        prop_schema.pop("nullable", None)
        if prop_schema.get("default", 0) is None:
            del prop_schema["default"]
        # An empty value (`?search=`) is read as absent, as a form with an empty field sends.
        params.append(
            Parameter(
                name,
                _schema(**prop_schema),
                "query",
                required=name in required,
                allowEmptyValue=True,
            )
        )
    return params


class _Response(Response):
    """sanic-ext's Response definition plus the two OpenAPI fields it leaves out."""

    headers: dict[str, Any]
    links: dict[str, Any]


def _response(
    func: Any,
    status: int,
    content: Mapping[str, Any],
    description: str,
    headers: Mapping[str, Any],
    links: Mapping[str, Any] | None = None,
) -> None:
    extra: dict[str, Any] = {"headers": dict(headers)}
    if links:
        extra["links"] = dict(links)
    _operation(func).responses[status] = _Response(
        MediaType.all(dict(content)), status=status, description=description, **extra
    )


def links_from_build(*operation_ids: str) -> dict[str, Any]:
    """Links from a response carrying a build to operations on it, as the same session."""
    return {
        op: {
            "operationId": op,
            "parameters": {
                "build_id": "$response.body#/build_id",
                "header.X-Session-ID": "$response.header.X-Session-ID",
            },
        }
        for op in operation_ids
    }


def _secured(func: F, auth: Auth) -> F:
    """The bearer security requirement (and the scheme, registered once)."""
    SpecificationBuilder().add_security_scheme(
        BEARER,
        "http",
        scheme="bearer",
        bearer_format="JWT",
        description="A JWT from the site's identity provider (RS256, ES256 or EdDSA): sub = "
        "player id, name = display name, roles (admin). Without one the request is anonymous.",
    )
    if auth == "optional":
        func = openapi.secured()(func)  # {}: anonymous is fine too
    return openapi.secured(BEARER)(func)


def doc(
    *,
    operation_id: str,
    summary: str,
    ok: tuple[int, type[Any]],
    body: type[Any] | None = None,
    query: type[msgspec.Struct] | None = None,
    build_id: bool = False,
    errors: tuple[int, ...] = (),
    bodies: Mapping[int, type[Any]] | None = None,
    limited: bool = True,
    session_required: bool = False,
    links: Mapping[str, Any] | None = None,
    description: str | None = None,
    media_type: str = "application/json",
    auth: Auth = "optional",
) -> Callable[[F], F]:
    """Document a handler: parameters, request body, success and error responses, headers.

    `limited`: the route is rate limited (429 and X-RateLimit-* headers). A body adds 413 and
    422; every operation can answer 500 and 503 (a store is down). Error responses carry the
    contract's Error body unless `bodies` names another model for that status. `auth`: the
    bearer token the route reads (security requirement, 401; admin adds 403 forbidden).
    """

    other = dict(bodies or {})

    def wrap(func: F) -> F:
        func = openapi.operation(operation_id)(func)
        func = openapi.summary(summary)(func)
        if description:
            func = openapi.description(description)(func)
        headers = {**SESSION_HEADERS, **(RATE_LIMIT_HEADERS if limited else {})}
        status, model = ok
        content = {media_type: component(model) if model is not str else _schema(type="string")}
        _response(func, status, content, "Success", headers, links)
        codes = {*errors, 500, 503}
        if auth is not None:
            codes.add(401)
            func = _secured(func, auth)
        if auth == "admin":
            codes.add(403)
        if body is not None:
            codes |= {413, 422}
        if limited:
            codes.add(429)
        for code in sorted(codes):
            extra = RETRY_HEADERS if code == 429 or (code == 503 and code not in other) else {}
            if code == 401:
                extra = AUTH_HEADERS
            what = ERROR_DESCRIPTIONS[code]
            if code == 403 and auth == "admin":
                what = "forbidden: the bearer token lacks the admin role" + (
                    f"; {what}" if 403 in errors else ""
                )
            error = {"application/json": component(other.get(code, schemas.Error))}
            _response(func, code, error, what, {**headers, **extra})
        if body is not None:
            func = openapi.body({"application/json": component(body)}, required=True)(func)
        for param in query_parameters(query) if query is not None else ():
            func = openapi.parameter(parameter=param)(func)
        if build_id:
            func = openapi.parameter(
                parameter=Parameter(
                    "build_id",
                    _schema(type="string", pattern=BUILD_ID_PATTERN),
                    "path",
                    required=True,
                    description="Build id: b_ + 8 lowercase hex",
                )
            )(func)
        session = (
            _schema(type="string", pattern=SESSION_PATTERN)
            if session_required
            else _schema(type="string")
        )
        func = openapi.parameter(
            parameter=Parameter(
                "X-Session-ID",
                session,
                "header",
                required=session_required,
                description="Session id (sess_ + 24 lowercase hex); missing or malformed: "
                + ("400 session_required" if session_required else "a fresh one is issued"),
            )
        )(func)
        return func

    return wrap
