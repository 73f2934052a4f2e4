"""JSON responses encoded once with msgspec."""

from __future__ import annotations

from typing import Any

import msgspec
from sanic import HTTPResponse

_encode = msgspec.json.Encoder().encode


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> HTTPResponse:
    return HTTPResponse(
        _encode(body), status=status, headers=headers, content_type="application/json"
    )
