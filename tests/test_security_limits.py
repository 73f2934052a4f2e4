"""Request limits on the real server (Sanic's own HTTP protocol enforces them): header size,
a client too slow with its headers or its body, malformed HTTP. Contract shape every time."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.conftest import Stores
from tests.factories import SESSION_RE
from tests.server import ServerProcess

pytestmark = pytest.mark.server

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def server(stores: Stores) -> Iterator[ServerProcess]:
    started = ServerProcess(
        stores.database_url, stores.valkey_url, workers=1, REQUEST_TIMEOUT_S=str(TIMEOUT_S)
    ).start()
    try:
        yield started
    finally:
        started.kill()


def exchange(server: ServerProcess, raw: bytes) -> tuple[int, dict[str, str], dict, float]:
    """Send raw bytes, read the first response: status, headers, JSON body, seconds taken."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            assert chunk, f"connection closed without a response: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(lines[0].split()[1]), headers, json.loads(body), time.monotonic() - started


def assert_contract(headers: dict[str, str], body: dict, code: str, status: int) -> None:
    assert body["error"] == code
    assert body["status"] == status
    assert set(body) == {"error", "message", "status"}
    assert headers["content-type"] == "application/json"
    assert SESSION_RE.match(headers["X-Session-ID"])


def test_headers_over_the_limit(server: ServerProcess) -> None:
    raw = b"GET /api/v1/builds HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    status, headers, body, _ = exchange(server, raw)
    assert status == 431
    assert_contract(headers, body, "request_header_fields_too_large", 431)


def test_request_line_over_the_limit(server: ServerProcess) -> None:
    raw = b"GET /api/v1/builds?search=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    status, headers, body, _ = exchange(server, raw)
    assert status == 431
    assert_contract(headers, body, "request_header_fields_too_large", 431)


def test_headers_that_never_finish(server: ServerProcess) -> None:
    status, headers, body, took = exchange(server, b"GET /api/v1/builds HTTP/1.1\r\nHost: x\r\n")
    assert status == 408
    assert_contract(headers, body, "request_timeout", 408)
    assert TIMEOUT_S <= took < TIMEOUT_S + 2


def test_body_that_never_finishes_is_the_clients_fault(server: ServerProcess) -> None:
    """A stalled body is a 408 (the client), not Sanic's 503 (us, and it would page)."""
    raw = (
        b"POST /api/v1/feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    status, headers, body, took = exchange(server, raw)
    assert status == 408
    assert_contract(headers, body, "request_timeout", 408)
    assert body["message"] == "Request body not received in time"
    assert TIMEOUT_S <= took < TIMEOUT_S + 2


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"POST /api/v1/feedback HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /api/v1/feedback HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /api/v1/feedback HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n",
    ],
    ids=["garbage", "negative-length", "length-and-chunked", "bad-chunk-size"],
)
def test_malformed_http_is_a_400(server: ServerProcess, raw: bytes) -> None:
    status, headers, body, _ = exchange(server, raw)
    assert status == 400
    assert_contract(headers, body, "bad_request", 400)
