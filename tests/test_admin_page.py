"""GET /admin and its two files: served by the service with a strict CSP, no inline script or
style in the page, labelled controls; and the real server streams the CSV export in chunks."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from service.handlers.admin_page import CSP
from tests.admin_data import ADMIN
from tests.conftest import Stores
from tests.server import ServerProcess


async def test_page_is_static_html_with_a_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CSP
    for directive in ("script-src 'self'", "style-src 'self'", "default-src 'none'"):
        assert directive in CSP
    assert "unsafe-inline" not in CSP
    assert "unsafe-eval" not in CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text
    # Every script is an external file; no inline <script>, style element, style attribute
    # or on* handler.
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts == [(' type="module" src="/admin/admin.js"', "")]
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    # Every form control has a label.
    for control_id in re.findall(r"<(?:input|select)\b[^>]*\bid=\"([^\"]+)\"", html):
        assert f'for="{control_id}"' in html, control_id
    assert 'name="viewport"' in html


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("admin.js", "text/javascript; charset=utf-8"), ("admin.css", "text/css; charset=utf-8")],
)
async def test_assets(client: httpx.AsyncClient, name: str, content_type: str) -> None:
    response = await client.get(f"/admin/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-security-policy"] == CSP
    assert len(response.content) > 500


async def test_no_other_files(client: httpx.AsyncClient) -> None:
    for name in ("index.html", "..%2Fapp.py", "admin.py", "secret"):
        response = await client.get(f"/admin/{name}")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


async def test_js_never_puts_data_into_html() -> None:
    from importlib import resources

    script = resources.files("service").joinpath("web", "admin", "admin.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "document.write"):
        assert sink not in script
    assert "localStorage" not in script  # the token stays in this tab (sessionStorage)


@pytest.fixture(scope="module")
def server(stores: Stores) -> Iterator[ServerProcess]:
    from tests.admin_data import KEY
    from tests.auth_keys import AUDIENCE, ISSUER

    process = ServerProcess(
        stores.database_url,
        stores.valkey_url,
        workers=1,
        AUTH_PUBLIC_KEY=KEY.public_pem(),
        AUTH_ISSUER=ISSUER,
        AUTH_AUDIENCE=AUDIENCE,
    ).start()
    try:
        yield process
    finally:
        process.kill()


@pytest.mark.server
async def test_real_server_streams_the_export(server: ServerProcess, sql) -> None:
    """3500 rows through the real server: chunked transfer (no Content-Length), every row."""
    await sql.execute("TRUNCATE feedback")
    await sql.execute(
        """
        INSERT INTO feedback (feedback_id, query, query_norm, response_snippet, search_mode,
                              rating, session_id, received_at, status)
        SELECT 'f_' || lpad(to_hex(i), 8, '0'), 'query ' || i, 'query ' || i, 'snippet',
               'quick', 'up', 'sess_' || lpad(to_hex(i), 24, '0'),
               now() - i * interval '1 second', 'new'
        FROM generate_series(1, 3500) i
        """
    )
    async with (
        httpx.AsyncClient(base_url=server.base_url) as client,
        client.stream("GET", "/api/v1/admin/feedback/export.csv", headers=ADMIN) as response,
    ):
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    lines = body.decode().split("\r\n")
    assert lines[-1] == ""
    assert len(lines) == 1 + 3500 + 1
    assert lines[1].startswith("f_00000dac,")  # oldest first (i = 3500)
