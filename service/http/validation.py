"""Request decoding: one msgspec decode per body, query strings converted by the same models.

sanic-ext's @validate would parse JSON and then convert it again (two passes); DESIGN rule 9
keeps the hot path to one decode, so bodies are decoded straight into msgspec Structs here.
The same Structs document the API through sanic-ext's OpenAPI (see service.http.docs).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import msgspec.inspect
from sanic.asgi import ASGIApp
from sanic.exceptions import PayloadTooLarge
from sanic_routing import Route

from service.contract.errors import Problem, ValidationFailed
from service.ctx import ApiRequest, App

T = TypeVar("T")

_AT = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_NAMED = re.compile(r"(?:missing required field|contains unknown field) `(?P<name>[^`]+)`")
_JSON_TYPES = ("application/json", "application/")


def problem_of(exc: msgspec.MsgspecError, *, root: str = "body") -> Problem:
    """A {field, problem} pair from a msgspec error message."""
    text = str(exc)
    match = _AT.match(text)
    problem, path = (match["problem"], match["path"] or "") if match else (text, "")
    named = _NAMED.search(problem)
    if named:
        path = f"{path}.{named['name']}"
    field = path.lstrip(".") or root
    return {"field": field, "problem": problem}


def fail(exc: msgspec.MsgspecError, *, root: str = "body") -> ValidationFailed:
    problem = problem_of(exc, root=root)
    return ValidationFailed(f"{problem['field']}: {problem['problem']}", details=[problem])


def _check_content_type(request: ApiRequest) -> None:
    """A body must declare application/json (or */*+json). The types a cross-site page may
    send without a CORS preflight (none, text/plain, form, multipart) are all refused, so
    no other site can make its visitors write here (issue 17, item 3)."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        raise ValidationFailed.field("content-type", "required: application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith(_JSON_TYPES[1]) and media.endswith("+json")
    ):
        raise ValidationFailed.field("content-type", "must be application/json")


def _check_text(value: Any, path: str) -> None:
    """Reject strings Postgres cannot store: NUL characters and lone surrogates."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationFailed.field(path, "must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationFailed.field(path, "must be valid Unicode text") from None
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _check_text(getattr(value, name), name)


_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def _decoder(model: type[T]) -> msgspec.json.Decoder[T]:
    """One decoder per model, built on first use."""
    decoder = _DECODERS.get(model)
    if decoder is None:
        decoder = _DECODERS[model] = msgspec.json.Decoder(model)
    return decoder


def decode_body(request: ApiRequest, model: type[T]) -> T:
    """Decode and validate a JSON body into `model`, or raise a 422 ValidationFailed."""
    _check_content_type(request)
    body = request.body
    if not body:
        raise ValidationFailed.field("body", "a JSON object is required")
    # msgspec skips the fields a model ignores without checking their UTF-8; check it all
    # here (isascii() is nearly free, a full decode runs only for non-ASCII bodies).
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed.field("body", "JSON is malformed: invalid UTF-8") from None
    try:
        value: T = _decoder(model).decode(body)
    except msgspec.MsgspecError as exc:
        raise fail(exc) from None
    except UnicodeDecodeError:  # msgspec raises this, not a MsgspecError, for bad UTF-8
        raise ValidationFailed.field("body", "JSON is malformed: invalid UTF-8") from None
    except RecursionError:  # ~1000 levels of [[[...]]] or {"a":{"a":...}}, even in ignored fields
        raise ValidationFailed.field("body", "JSON is nested too deeply") from None
    if b"\\u" in body:  # NUL and surrogates can only arrive escaped; skip the walk otherwise
        _check_text(value, "body")
    check = getattr(value, "check", None)
    if check is not None:
        check()
    return value


_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT_FIELDS: dict[type[Any], frozenset[str]] = {}


def _int_fields(model: type[Any]) -> frozenset[str]:
    """Names of a query model's integer fields (computed once per model)."""
    names = _INT_FIELDS.get(model)
    if names is None:
        info = msgspec.inspect.type_info(model)
        fields = getattr(info, "fields", ())
        names = frozenset(f.name for f in fields if isinstance(f.type, msgspec.inspect.IntType))
        _INT_FIELDS[model] = names
    return names


def parse_query(request: ApiRequest, model: type[T]) -> T:
    """Convert query-string arguments (first value of each) into `model`, or raise 422."""
    args = {key: values[0] for key, values in request.args.items() if values}
    for key in _int_fields(model) & args.keys():
        # Lax conversion would also read "5.0" or "1e3" as integers: only digits are.
        if _INTEGER.fullmatch(args[key]) is None:
            raise ValidationFailed.field(key, "Expected `int`, got `str`")
    try:
        value = msgspec.convert(args, model, strict=False)
    except msgspec.ValidationError as exc:
        raise fail(exc, root="query") from None
    for key, raw in args.items():
        # Lax conversion reads "null" as None for optional fields: a value sent is a value.
        if getattr(value, key, raw) is None:
            raise ValidationFailed.field(key, f"Invalid value {raw!r}")
    _check_text(value, "query")
    check: Callable[[], None] | None = getattr(value, "check", None)
    if check is not None:
        check()
    return value


async def limit_body(request: ApiRequest, route: Route, **_: Any) -> None:
    """Reject bodies over REQUEST_MAX_SIZE before they are buffered (413 payload_too_large).

    Sanic's own HTTP server enforces the limit while reading; under ASGI it does not, so the
    declared Content-Length is checked here and a streamed (chunked) body is read with a cap.
    """
    limit = request.app.config.REQUEST_MAX_SIZE
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("Request body exceeds the size limit")
    stream = request.stream
    if isinstance(stream, ASGIApp) and stream.request_body and not route.extra.ignore_body:
        chunks, size = [], 0
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge("Request body exceeds the size limit")
            chunks.append(chunk)
        request.body = b"".join(chunks)


def register(app: App) -> None:
    # After routing (404/405 first), before Sanic buffers the body for the handler.
    app.add_signal(limit_body, "http.routing.after")
