"""Admin: hide a search query from popular queries, unhide it, list the hidden ones."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from sanic import Blueprint, HTTPResponse

from aggregators.normalise import normalise_query
from aggregators.popular import Hidden
from aggregators.views import VALKEY_ERRORS
from service.auth.guard import require_admin
from service.contract import schemas
from service.contract.errors import ServiceUnavailable, ValidationFailed
from service.contract.formats import iso
from service.contract.text import problem_of
from service.ctx import ApiRequest
from service.http.docs import doc
from service.http.responses import json_response
from service.http.validation import parse_query

PATH = "/admin/insights/hidden-queries"
RETRY_S = 2


def _normalised(raw: str) -> str:
    """The path's query (percent-decoded once) as popular queries group it; 422 if nothing
    visible is left."""
    query = unquote(raw, errors="strict")
    problem = problem_of(query)
    if problem is not None:
        raise ValidationFailed.field("query", problem)
    norm = normalise_query(query)
    if not norm:
        raise ValidationFailed.field("query", "must not be blank")
    return norm


def _out(hidden: Hidden) -> schemas.HiddenQuery:
    return schemas.HiddenQuery(
        query=hidden.query, hidden=True, hidden_by=hidden.hidden_by, hidden_at=iso(hidden.hidden_at)
    )


def _cursor(query: str) -> str:
    return base64.urlsafe_b64encode(query.encode()).decode().rstrip("=")


def _after(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationFailed.field("cursor", "not a cursor this API gave out") from None


_STALE = "Stored, but the hidden set in Valkey could not be updated; retry (idempotent)"


@doc(
    operation_id="hideQuery",
    summary="Hide a query from popular queries (admin; idempotent)",
    description="The query is normalised like popular queries group them; it never appears "
    "there again, in any period or mode, until it is unhidden.",
    ok=(200, schemas.HiddenQuery),
    errors=(422,),
    limited=False,
    auth="admin",
)
async def hide(request: ApiRequest, query: str) -> HTTPResponse:
    admin = require_admin(request)
    norm = _normalised(query)
    try:
        hidden = await request.app.ctx.popular.hide(norm, admin.display_name)
    except VALKEY_ERRORS as exc:
        raise ServiceUnavailable(_STALE, retry_after=RETRY_S) from exc
    return json_response(_out(hidden))


@doc(
    operation_id="unhideQuery",
    summary="Show a hidden query in popular queries again (admin; idempotent)",
    ok=(200, schemas.HiddenQuery),
    errors=(422,),
    limited=False,
    auth="admin",
)
async def unhide(request: ApiRequest, query: str) -> HTTPResponse:
    require_admin(request)
    norm = _normalised(query)
    try:
        await request.app.ctx.popular.unhide(norm)
    except VALKEY_ERRORS as exc:
        raise ServiceUnavailable(_STALE, retry_after=RETRY_S) from exc
    return json_response(schemas.HiddenQuery(query=norm, hidden=False))


@doc(
    operation_id="listHiddenQueries",
    summary="Hidden queries in text order (admin; cursor pagination)",
    query=schemas.HiddenQueriesQuery,
    ok=(200, schemas.HiddenQueryList),
    errors=(422,),
    auth="admin",
)
async def list_hidden(request: ApiRequest) -> HTTPResponse:
    require_admin(request)
    q = parse_query(request, schemas.HiddenQueriesQuery)
    page = await request.app.ctx.popular.hidden_page(_after(q.cursor), q.limit + 1)
    more = len(page) > q.limit
    items = page[: q.limit]
    return json_response(
        schemas.HiddenQueryList(
            items=[_out(h) for h in items],
            next_cursor=_cursor(items[-1].query) if more else None,
        )
    )


def blueprint() -> Blueprint:
    bp = Blueprint("admin_queries")
    bp.add_route(list_hidden, PATH, methods=["GET"], name="list_hidden")
    for handler, method in ((hide, "PUT"), (unhide, "DELETE")):
        bp.add_route(handler, f"{PATH}/<query:path>", methods=[method], name=handler.__name__)
    return bp
