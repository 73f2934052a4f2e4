"""The /admin page in a real browser (Playwright driving Debian's chromium) against the real
server with seeded feedback: token entry, chart and the three tables with the right numbers,
marking an item reviewed (and the API agreeing), the 401/403/503 states, a phone-width
layout, and no console errors.

Without chromium these tests skip with how to install it, except where REQUIRE_BROWSER=1
(CI sets it in .ci/run): there they fail, so CI never passes without running them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.admin_data import ADMIN, ADMIN_TOKEN, KEY, PLAYER_TOKEN, feedback_body
from tests.auth_keys import AUDIENCE, ISSUER
from tests.conftest import Stores, clean_stores
from tests.factories import new_session
from tests.server import ROOT, ServerProcess

pytestmark = pytest.mark.server
INSTALL_HINT = (
    "the /admin browser tests need chromium: `apt-get install -y chromium` (Debian/Ubuntu), "
    "or CHROMIUM_PATH=/path/to/chromium; Playwright's own browser download is not used"
)


def chromium_path() -> str | None:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> str:
    """The chromium executable; else skip (developer machine) or fail (REQUIRE_BROWSER=1)."""
    path = chromium_path()
    problem = None if path else INSTALL_HINT
    if path:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed: `make setup` (dev extra)"
    if problem is not None:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)
    assert path is not None
    return path


# Past days go straight into the daily rollup (what the chart reads); today comes through the
# API. (day offset, mode, up, down)
PAST = [(d, mode, up, down) for d in range(1, 7) for mode, up, down in
        [("quick", 10 + d, 3), ("smart", 8, d), ("deep", 5, 4)]]  # fmt: skip
TODAY = [
    # (query, mode, rating, comment)
    ("How do I unlock the Paladin?", "quick", "down", "It named the wrong quest"),
    ("how do i unlock the  paladin?", "quick", "down", "Outdated since alpha 2"),
    ("How do I unlock the Paladin?", "smart", "down", None),
    ("best tank build", "quick", "up", None),
    ("best tank build", "quick", "up", "Spot on"),
    ("caravan route", "deep", "down", "No route shown"),
    ("caravan route", "deep", "up", None),
]
GAPS = [("siege weapon crafting", 3), ("node tax rates", 2), ("mount breeding", 1)]


def expected_totals() -> dict[str, tuple[int, int]]:
    totals = {mode: [0, 0] for mode in ("quick", "smart", "deep")}
    for _, mode, up, down in PAST:
        totals[mode][0] += up
        totals[mode][1] += down
    for _, mode, rating, _ in TODAY:
        totals[mode][0 if rating == "up" else 1] += 1
    return {mode: (up, down) for mode, (up, down) in totals.items()}


async def _seed_past(database_url: str) -> None:
    today = datetime.now(UTC).date()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            "INSERT INTO feedback_daily (day, search_mode, rating, count) VALUES ($1, $2, $3, $4)",
            [
                (today - timedelta(days=d), mode, rating, n)
                for d, mode, up, down in PAST
                for rating, n in (("up", up), ("down", down))
            ],
        )
    finally:
        await conn.close()


async def _zero_queries(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM search_zero_queries"))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def server(stores: Stores) -> Iterator[ServerProcess]:
    require_browser()
    import asyncio

    asyncio.run(clean_stores(stores))
    process = ServerProcess(
        stores.database_url,
        stores.valkey_url,
        workers=1,
        AUTH_PUBLIC_KEY=KEY.public_pem(),
        AUTH_ISSUER=ISSUER,
        AUTH_AUDIENCE=AUDIENCE,
        FLUSH_INTERVAL_S="0.1",
    ).start()
    try:
        with httpx.Client(base_url=process.base_url) as client:
            for query, mode, rating, comment in TODAY:
                body = feedback_body(query=query, search_mode=mode, rating=rating, comment=comment)
                sent = client.post(
                    "/api/v1/feedback", json=body, headers={"X-Session-ID": new_session()}
                )
                assert sent.status_code == 201
            for query, sessions in GAPS:
                for _ in range(sessions):
                    found = {"query": query, "search_mode": "smart", "result_count": 0}
                    sent = client.post(
                        "/api/v1/analytics/search",
                        json=found,
                        headers={"X-Session-ID": new_session()},
                    )
                    assert sent.status_code == 201
        # The flush is asynchronous: wait until its rows are there (bounded; the API serves
        # content gaps from a copy, so asking it before the flush would pin an empty one).
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while asyncio.run(_zero_queries(stores.database_url)) < len(GAPS):
            assert datetime.now(UTC) < deadline, "search events not flushed in 20 s"
            time.sleep(0.05)  # the server flushes every 0.1 s
        asyncio.run(_seed_past(stores.database_url))
        yield process
    finally:
        process.kill()


@pytest.fixture(scope="module")
def browser(server: ServerProcess) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=require_browser(), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield instance
        finally:
            instance.close()


class Console:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def unexpected(self, *allowed_statuses: int) -> list[str]:
        """Errors other than the browser's own note on an expected failed API call."""
        expected = tuple(f"the server responded with a status of {s}" for s in allowed_statuses)
        return [e for e in self.errors if not any(x in e for x in expected)]


@pytest.fixture
def page(browser: Any, server: ServerProcess) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.console = Console(page)
    try:
        yield page
    finally:
        context.close()


def sign_in(page: Any, server: ServerProcess, token: str) -> None:
    page.goto(f"{server.base_url}/admin")
    page.get_by_label("Admin bearer token").fill(token)
    page.get_by_role("button", name="Open insights").click()


def rows(page: Any, table: str) -> list[list[str]]:
    cells: list[list[str]] = page.eval_on_selector_all(
        f"#{table} tbody tr",
        "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))",
    )
    return cells


def test_admin_sees_chart_and_tables_with_the_right_numbers(page, server) -> None:
    sign_in(page, server, ADMIN_TOKEN)
    page.locator("#insights").wait_for(state="visible")
    page.locator("#queue tbody tr").first.wait_for()
    totals = expected_totals()
    up, down = (sum(t[i] for t in totals.values()) for i in (0, 1))
    listed = page.locator("#totals li").all_inner_texts()
    assert listed == [
        f"All modes {100 * up / (up + down):.1f}% ({up} up, {down} down)",
        *(f"{m} {100 * u / (u + d):.1f}% ({u} up, {d} down)" for m, (u, d) in totals.items()),
    ]
    # The chart: one point per mode per day with feedback (7 days each), a line per mode.
    for mode in ("quick", "smart", "deep"):
        assert page.locator(f"#chart circle[data-mode={mode}]").count() == 7
        assert page.locator(f"#chart polyline[data-mode={mode}]").count() == 1
    today = datetime.now(UTC).date().isoformat()
    assert page.locator("#chart circle[data-mode=quick] title").last.text_content() == (
        f"{today} quick: 50.0% (2 up, 2 down)"
    )
    patterns = rows(page, "patterns")
    assert [r[:5] for r in patterns] == [
        ["how do i unlock the paladin?", "3", "0", "100.0%", "3"],
        ["caravan route", "1", "1", "50.0%", "1"],
    ]
    assert patterns[0][6].splitlines() == ["Outdated since alpha 2", "It named the wrong quest"]
    assert [r[:3] for r in rows(page, "gaps")] == [
        ["siege weapon crafting", "3", "3"],
        ["node tax rates", "2", "2"],
        ["mount breeding", "1", "1"],
    ]
    queue = rows(page, "queue")
    assert len(queue) == len(TODAY)
    # (innerText shows inner whitespace as HTML renders it: collapsed)
    assert [r[3] for r in queue] == [" ".join(q.split()) for q, *_ in reversed(TODAY)]
    assert all(r[5] == "new" for r in queue)
    shot = os.environ.get("ADMIN_SCREENSHOT")  # make screenshot: docs/admin-page.png
    if shot:
        page.screenshot(path=str(ROOT / shot), full_page=True)
    assert page.console.unexpected() == []


def test_mark_reviewed_and_the_api_agrees(page, server) -> None:
    sign_in(page, server, ADMIN_TOKEN)
    row = page.locator("#queue tbody tr", has_text="caravan route").first
    row.get_by_role("button", name="Mark reviewed").click()
    row.locator("td.status", has_text="reviewed").wait_for()
    page.get_by_role("status").filter(has_text="Marked reviewed by Root").wait_for()
    with httpx.Client(base_url=server.base_url) as client:
        listed = client.get("/api/v1/admin/feedback", params={"status": "reviewed"}, headers=ADMIN)
    items = listed.json()["items"]
    assert [(i["query"], i["status"], i["reviewed_by"]) for i in items] == [
        ("caravan route", "reviewed", "Root")
    ]
    # Reloaded, the queue (status new) no longer lists it; the token survived the reload.
    page.reload()
    page.locator("#queue tbody tr").first.wait_for()
    assert len(rows(page, "queue")) == len(TODAY) - 1
    assert page.console.unexpected() == []


def test_non_admin_token_sees_the_403_state(page, server) -> None:
    sign_in(page, server, PLAYER_TOKEN)
    status = page.get_by_role("status")
    status.filter(has_text="403").wait_for()
    assert "no admin role" in status.inner_text()
    assert page.locator("#login").is_visible()
    assert page.locator("#insights").is_hidden()
    assert page.console.unexpected(403) == []


def test_bad_token_sees_the_401_state(page, server) -> None:
    sign_in(page, server, "not-a-token")
    page.get_by_role("status").filter(has_text="401 authentication_failed").wait_for()
    assert page.locator("#login").is_visible()
    assert page.console.unexpected(401) == []


def test_service_down_sees_the_503_state(page, server) -> None:
    body = '{"error": "service_unavailable", "message": "PostgreSQL is unreachable", "status": 503}'
    page.route(
        "**/api/v1/admin/feedback/summary*",
        lambda route: route.fulfill(
            status=503, body=body, headers={"Content-Type": "application/json", "Retry-After": "7"}
        ),
    )
    sign_in(page, server, ADMIN_TOKEN)
    status = page.get_by_role("status")
    status.filter(has_text="503").wait_for()
    assert "PostgreSQL is unreachable" in status.inner_text()
    assert "Retry in 7 seconds" in status.inner_text()
    assert page.console.unexpected(503) == []


def test_phone_width(browser, server) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    console = Console(page)
    try:
        sign_in(page, server, ADMIN_TOKEN)
        page.locator("#queue tbody tr").first.wait_for()
        # Nothing wider than the screen: wide tables scroll inside their own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        button = page.get_by_role("button", name="Mark resolved").first
        box = button.bounding_box()
        assert box is not None
        assert box["height"] >= 32  # a finger-sized target
        assert console.unexpected() == []
    finally:
        context.close()
