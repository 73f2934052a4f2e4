"""The HTTP/1.1 edge on the real server, over raw sockets (issue 17, items 6, 8 and 9):

* 6: a header field name with whitespace or other non-token characters is a 400, and the
  connection never answers a second, smuggled request;
* 8: REQUEST_TIMEOUT_S bounds the whole request (headers + body), not the gap between
  bytes, and a worker holds at most MAX_CONNECTIONS_PER_WORKER connections;
* 9: malformed request lines are one WARNING line and a 400 (no ERROR traceback, no 5xx),
  and a client that hangs up mid-headers is neither logged nor counted.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Stores
from tests.scrape import Scrape
from tests.server import ServerProcess

pytestmark = pytest.mark.server

TIMEOUT_S = 1.0
MAX_CONNECTIONS = 6
SMUGGLED = b"GET /api/v1/builds/templates HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def server(stores: Stores) -> Iterator[ServerProcess]:
    started = ServerProcess(
        stores.database_url,
        stores.valkey_url,
        workers=1,
        REQUEST_TIMEOUT_S=str(TIMEOUT_S),
        MAX_CONNECTIONS_PER_WORKER=str(MAX_CONNECTIONS),
    ).start()
    try:
        yield started
    finally:
        started.kill()


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_all(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def statuses(data: bytes) -> list[int]:
    """Status codes of every response in `data`, in order."""
    return [int(line.split()[1]) for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def body_of(data: bytes) -> dict:
    return json.loads(data.partition(b"\r\n\r\n")[2])


def scrape(server: ServerProcess) -> Scrape:
    return Scrape.parse(httpx.get(f"{server.base_url}/metrics", timeout=10).text)


def requests_total(server: ServerProcess, status_class: str | None = None) -> float:
    labels = {} if status_class is None else {"status_class": status_class}
    return scrape(server).total("myashes_http_requests_total", **labels)


# ---- item 6: header field names ------------------------------------------------------------


def _post_with(field_line: bytes) -> bytes:
    """A POST whose body is a whole second request, framed only by `field_line`."""
    return (
        b"POST /api/v1/analytics/search HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\n" + field_line + b"\r\n\r\n" + SMUGGLED
    )


@pytest.mark.parametrize(
    "field_line",
    [
        b"Content-Length : %d" % len(SMUGGLED),
        b"Content-Length\t: %d" % len(SMUGGLED),
        b"Transfer-Encoding : chunked",
        b" Content-Length: %d" % len(SMUGGLED),  # obs-fold / leading whitespace
        b"Content(Length): %d" % len(SMUGGLED),
        b"Content-L\xe9ngth: %d" % len(SMUGGLED),
        b": %d" % len(SMUGGLED),  # empty name
        b"X-Ok: a\x00b",  # NUL in a value
    ],
    ids=["space", "tab", "te-space", "fold", "paren", "non-ascii", "empty", "nul-value"],
)
def test_invalid_field_lines_are_400_and_nothing_is_smuggled(
    server: ServerProcess, field_line: bytes
) -> None:
    with connect(server) as conn:
        conn.sendall(_post_with(field_line))
        data = read_all(conn)  # the server closes after a 400
    assert statuses(data) == [400], data
    body = body_of(data)
    assert (body["error"], body["status"]) == ("bad_request", 400)


def test_valid_field_lines_still_pass(server: ServerProcess) -> None:
    raw = (
        b"GET /api/v1/builds/templates?x=%C3%A9 HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n"
        b"Accept:  */*  \r\nUser-Agent: caf\xc3\xa9/1.0\r\nConnection: close\r\n\r\n"
    )
    with connect(server) as conn:
        conn.sendall(raw)
        assert statuses(read_all(conn)) == [200]


# ---- item 9: malformed request lines, clients that leave early ----------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
        b"GET x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /api/v1/builds HTTP/2.0\r\nHost: a\r\n\r\n",
        b"G(T /api/v1/builds HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
    ids=["connect", "bad-target", "bad-version", "bad-method"],
)
def test_malformed_request_lines_are_a_400_and_one_warning(
    server: ServerProcess, raw: bytes
) -> None:
    errors_before = requests_total(server, "5xx")
    log_before = len(server.log().splitlines())
    with connect(server) as conn:
        conn.sendall(raw)
        data = read_all(conn)
    assert statuses(data) == [400]
    assert body_of(data)["error"] == "bad_request"
    # The warning is written before the response is sent: it is in the log by now.
    new_lines = server.log().splitlines()[log_before:]
    records = [json.loads(line) for line in new_lines if line.startswith("{")]
    assert [(r["level"], r["msg"].split(" from ")[0]) for r in records] == [
        ("WARNING", "malformed request")
    ], new_lines
    assert not [line for line in new_lines if "Traceback" in line or '"ERROR"' in line]
    assert requests_total(server, "5xx") == errors_before


@pytest.mark.parametrize(
    "partial",
    [b"GET /api/v1/bu", b"GET /api/v1/builds HTTP/1.1\r\nHost: a\r\n"],
    ids=["mid-request-line", "mid-headers"],
)
def test_a_client_leaving_mid_headers_is_not_a_request(
    server: ServerProcess, partial: bytes
) -> None:
    before = requests_total(server)
    log_before = len(server.log().splitlines())
    for _ in range(3):
        with connect(server) as conn:
            conn.sendall(partial)
            conn.shutdown(socket.SHUT_WR)  # the client is done: EOF reaches the server
            assert read_all(conn) == b""  # no answer: the server just closes
    assert requests_total(server) == before
    assert server.log().splitlines()[log_before:] == []


# ---- item 8: whole-request timeout, connection cap ----------------------------------------


def _trickle(server: ServerProcess, head: bytes, trickle: bytes) -> tuple[bytes, float]:
    """Send `head`, then one byte of `trickle` every 0.1 s until the server closes the
    connection; returns what it answered and how long the connection lived.

    The server closes with our last bytes unread, so the kernel may answer with a reset
    that discards its 408 before we read it: the close time is the measure, the 408 is
    checked when it arrived."""
    started = time.monotonic()
    data = b""
    with connect(server) as conn:
        conn.sendall(head)
        conn.settimeout(0.1)
        try:
            for byte in trickle:
                conn.sendall(bytes([byte]))
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    return data, time.monotonic() - started


def test_a_body_sent_one_byte_at_a_time_is_cut_at_the_request_timeout(
    server: ServerProcess,
) -> None:
    """60 KB declared, one byte per 0.1 s: each gap is far below the timeout of 1 s, the
    whole body would take 100 minutes. Sanic's own clock (the gap since the last byte)
    never fires; the whole-request clock answers 408 and closes after ~1 s."""
    head = (
        b"POST /api/v1/feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 60000\r\n\r\n"
    )
    data, lived = _trickle(server, head, b"x" * 200)  # 20 s of trickle if never cut
    assert TIMEOUT_S <= lived < TIMEOUT_S + 2
    assert statuses(data) in ([408], []), data  # [] only when a reset ate the answer
    if data:
        assert body_of(data)["error"] == "request_timeout"


def test_headers_sent_one_byte_at_a_time_are_cut_at_the_request_timeout(
    server: ServerProcess,
) -> None:
    data, lived = _trickle(server, b"GET /api/v1/builds HTTP/1.1\r\n", b"X-Slow: " + b"a" * 300)
    assert TIMEOUT_S <= lived < TIMEOUT_S + 2
    assert statuses(data) in ([408], []), data


def test_connections_over_the_cap_get_503_and_are_closed(server: ServerProcess) -> None:
    refused_before = scrape(server).total("myashes_connections_refused_total")
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):  # each one accepted and answered: all are open now
            conn = connect(server)
            conn.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")
            held.append(conn)
        with connect(server) as extra:
            data = read_all(extra)
        assert statuses(data) == [503]
        assert body_of(data) == {
            "error": "service_unavailable",
            "message": "Too many connections",
            "status": 503,
        }
        assert b"retry-after: 1\r\n" in data.lower()
        held.pop().close()  # one leaves: the next client is served again
        deadline = time.monotonic() + 5
        answered: list[int] = []
        while answered != [200] and time.monotonic() < deadline:
            with connect(server) as again:  # until the server has seen the close
                again.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answered = statuses(read_all(again))
        assert answered == [200]
    finally:
        for conn in held:
            conn.close()
    # /metrics needs a connection too: read once the held ones are gone.
    deadline = time.monotonic() + 5
    while True:
        try:
            refused = scrape(server).total("myashes_connections_refused_total")
            break
        except (httpx.HTTPError, ValueError):
            assert time.monotonic() < deadline
    assert refused >= refused_before + 1
