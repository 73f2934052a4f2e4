"""Sanic's HTTP/1.1 server protocol, bounded: the whole request (line, headers and body) must
arrive within REQUEST_TIMEOUT_S, a worker holds at most MAX_CONNECTIONS_PER_WORKER
connections, and a request line or header that RFC 9112 does not allow is a 400.

Sanic times a request by the gap since the last byte received, so a client sending one byte
every few seconds keeps a connection (and its buffers) forever: 3,000 such connections held
a worker at +83 MiB (issue 17, item 8). Here the clock starts with the request's first byte.
`python -m service run` (the image's command) serves with BoundedHttpProtocol.
"""

from __future__ import annotations

import logging
import re
from asyncio import BaseTransport, Transport
from time import monotonic as current_time
from typing import Any, cast

from prometheus_client import Counter
from sanic.exceptions import BadRequest, RequestTimeout
from sanic.http import Http, Stage
from sanic.models.server_types import ConnInfo
from sanic.server.protocols.http_protocol import HttpProtocol

log = logging.getLogger("myashes.http")

REFUSED = Counter(
    "myashes_connections_refused_total",
    "Connections answered 503 and closed at once: the worker held MAX_CONNECTIONS_PER_WORKER.",
)
_BUSY_BODY = b'{"error":"service_unavailable","message":"Too many connections","status":503}'
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n" % len(_BUSY_BODY) + _BUSY_BODY
)

# RFC 9112 section 3 (request line) and 5 (field lines), RFC 9110 section 5.6.2 (token):
# method SP request-target SP HTTP-version, then name ":" value lines. A field name is a
# token, with no whitespace before the colon (RFC 9112 section 5.1: a server MUST answer 400).
# Sanic 25.12.1's parser (sanic/http/http1.py, http1_request_header) splits a field line at
# its first colon and keeps "content-length " as the name: the body of "Content-Length : 48"
# is then read as a second, smuggled request on the same connection. Upstream: searched
# https://github.com/sanic-org/sanic/issues (2026-11-29, "header name whitespace",
# "smuggling") and found no report of it; the report to file is drafted in README.md,
# "Security". Other servers fixed the same bug: cherrypy/cheroot#714, netty/netty#9585.
# Values: visible ASCII, obs-text, SP and HTAB only (no NUL, no bare CR or LF).
# Targets: origin-form (/path?query), asterisk-form (*) and absolute-form (http[s]://...);
# authority-form (CONNECT host:port) is not served here.
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_HEAD = re.compile(
    rb"(?:" + _TOKEN + rb") (?:/[\x21-\x7e]*|\*|[Hh][Tt][Tt][Pp][Ss]?://[\x21-\x7e]+) HTTP/1\.[01]"
    rb"(?:\r\n" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*)*"
)


def check_head(head: bytes) -> None:
    """Refuse a request line or header field RFC 9112 does not allow (a 400)."""
    if _HEAD.fullmatch(head) is None:
        raise BadRequest("Malformed request line or header field")


class BoundedHttp(Http):
    """Http with a request clock that starts at the request's first byte and a strict
    request line / field line check."""

    __slots__ = ()

    async def http1_request_header(self) -> None:
        """Sanic's parser, then the check of what it parsed (request.head keeps the bytes),
        before any body is read or any handler runs. A refused request closes the connection
        (Sanic drops keep-alive after an error in this stage), so bytes after a header Sanic
        misread are never parsed as another request. (A http.lifecycle.read_head signal
        handler would do the same at twice the cost: Sanic removes that dispatch from its
        parser unless something listens to it.)"""
        await super().http1_request_header()  # type: ignore[no-untyped-call]
        check_head(self.request.head)

    def init_for_request(self) -> None:
        super().init_for_request()  # type: ignore[no-untyped-call]
        protocol = cast(BoundedHttpProtocol, self.protocol)
        # Bytes of the next request already buffered (pipelined): its clock runs from now.
        protocol.began = current_time() if protocol.recv_buffer else None

    def create_empty_request(self) -> None:
        """The stand-in request for an error before a request existed. Sanic builds it from
        the URL it could not parse (`GET x`, `CONNECT host:22`) and fails again, which ended
        in a 2.5 KB ERROR traceback and a 500 (issue 17, item 9): fall back to `*`."""
        try:
            super().create_empty_request()
        except BadRequest:
            self.url = None
            super().create_empty_request()
        self.request.conn_info = self.protocol.conn_info  # a lost client is seen as one (499)

    async def error_response(self, exception: Exception) -> None:
        """A client that hung up before its request line and headers were complete sent no
        request: nothing to answer, log or count (Sanic answered a 503 nobody reads, which
        fed the 5xx error-rate alert; issue 17, item 9)."""
        info = self.protocol.conn_info
        if self.stage is Stage.REQUEST and info is not None and info.lost:
            self.keep_alive = False
            return
        await super().error_response(exception)


class BoundedHttpProtocol(HttpProtocol):
    """HttpProtocol with a whole-request timeout and a cap on connections per worker."""

    HTTP_CLASS = BoundedHttp
    __slots__ = ("began", "max_connections")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.began: float | None = None  # when the request being received sent its first byte
        self.max_connections: int = self.app.ctx.settings.max_connections_per_worker

    def connection_made(self, transport: BaseTransport) -> None:
        if len(self.connections) >= self.max_connections:
            # Answer and close at once: no task, no buffers (connection_lost needs conn_info).
            self.conn_info = ConnInfo(cast(Any, transport), unix=self._unix)
            REFUSED.inc()
            cast(Transport, transport).write(BUSY)
            transport.close()
            return
        super().connection_made(transport)  # type: ignore[no-untyped-call]

    def data_received(self, data: bytes) -> None:
        if self.began is None:
            self.began = current_time()
        super().data_received(data)

    def check_timeouts(self) -> None:
        http, began = self._http, self.began
        if self._task and http is not None and began is not None:
            receiving = http.stage is Stage.REQUEST or (
                http.stage is Stage.HANDLER and bool(http.request_body)
            )
            if receiving and current_time() - began > self.request_timeout:
                body = http.stage is Stage.HANDLER  # the same words as errors.py's 408s
                message = "Request body not received in time" if body else "Request Timeout"
                http.exception = RequestTimeout(message)
                # No draining the rest of the body after the 408: close the connection.
                http.request_body = None
                http.keep_alive = False
                self._task.cancel()
                return
        super().check_timeouts()  # type: ignore[no-untyped-call]
