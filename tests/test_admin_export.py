"""GET /admin/feedback/export.csv: streamed RFC 4180 CSV, formula cells neutralised, a dated
file name, from/to, an empty export is the header row alone."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from service.insights import export
from tests.admin_data import ADMIN, SETTINGS, send_feedback
from tests.factories import API, validation

pytestmark = pytest.mark.parametrize("settings_overrides", [SETTINGS], indirect=True)
HEADER = "id,received_at,mode,rating,query,snippet,comment,status,note,reviewed_by,reviewed_at\r\n"


async def get_csv(client: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await client.get(f"{API}/admin/feedback/export.csv", params=params, headers=ADMIN)


async def test_empty_export_is_the_header_row(client: httpx.AsyncClient) -> None:
    response = await get_csv(client)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    today = datetime.now(UTC).date().isoformat()
    assert response.headers["content-disposition"] == (
        f'attachment; filename="feedback-{today}.csv"'
    )
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-session-id"].startswith("sess_")
    assert response.content == HEADER.encode()


async def test_rows_quoted_per_rfc_4180_and_formulas_neutralised(
    client: httpx.AsyncClient,
) -> None:
    first = await send_feedback(
        client,
        query='tank, "paladin" or guardian',
        comment='=HYPERLINK("http://evil")\nline 2',
        rating="down",
    )
    second = await send_feedback(
        client,
        query="+1 build",
        response_snippet="-2 armor",
        comment="@SUM(A1)",
    )
    third = await send_feedback(client, query="kaelar", comment="\tÜnïcödé ✓")
    review = await client.patch(
        f"{API}/admin/feedback/{third['feedback_id']}",
        json={"status": "resolved", "note": "=1+1"},
        headers=ADMIN,
    )
    assert review.status_code == 200
    response = await get_csv(client)
    assert response.status_code == 200
    text = response.content.decode("utf-8")
    assert text.startswith(HEADER)
    assert '"tank, ""paladin"" or guardian"' in text
    assert '"\'=HYPERLINK(""http://evil"")\nline 2"' in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == HEADER.strip().split(",")
    assert rows[1:] == [
        [
            first["feedback_id"],
            first["received_at"],
            "smart",
            "down",
            'tank, "paladin" or guardian',
            "Try a Paladin.",
            '\'=HYPERLINK("http://evil")\nline 2',
            "new",
            "",
            "",
            "",
        ],
        [
            second["feedback_id"],
            second["received_at"],
            "smart",
            "up",
            "'+1 build",
            "'-2 armor",
            "'@SUM(A1)",
            "new",
            "",
            "",
            "",
        ],
        [
            third["feedback_id"],
            third["received_at"],
            "smart",
            "up",
            "kaelar",
            "Try a Paladin.",
            "'\tÜnïcödé ✓",
            "resolved",
            "'=1+1",
            "Root",
            review.json()["reviewed_at"],
        ],
    ]
    assert text.count("\r\n") == 4  # header + 3 rows; the quoted newline stays \n


async def test_from_to_and_bad_ranges(client: httpx.AsyncClient, sql) -> None:
    old = await send_feedback(client, query="old one")
    await send_feedback(client, query="new one")
    await sql.execute(
        "UPDATE feedback SET received_at = $1 WHERE feedback_id = $2",
        datetime(2026, 1, 10, 12, tzinfo=UTC),
        old["feedback_id"],
    )
    january = await get_csv(client, **{"from": "2026-01-10", "to": "2026-01-10"})
    lines = january.content.decode().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(old["feedback_id"] + ",2026-01-10T12:00:00.000+00:00,")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    nothing = await get_csv(client, **{"from": tomorrow})
    assert nothing.content == HEADER.encode()
    bad = await get_csv(client, **{"from": "2026-02-01", "to": "2026-01-01"})
    assert (bad.status_code, bad.json()) == (422, validation("from", "must be before `to`"))


async def test_read_in_chunks(client: httpx.AsyncClient, app, monkeypatch) -> None:
    """More rows than a chunk: the cursor is read CHUNK_ROWS at a time, each chunk encoded and
    sent on its own; every row arrives once, in order (the real server's chunked transfer is
    checked in tests/test_admin_page.py)."""
    monkeypatch.setattr(export, "CHUNK_ROWS", 2)
    sent = [(await send_feedback(client, query=f"query {i}"))["feedback_id"] for i in range(5)]
    chunks = [chunk async for chunk in export.export_csv(None, None)]
    assert len(chunks) == 4  # header, then rows 2 + 2 + 1
    assert chunks[0] == HEADER.encode()
    text = b"".join(chunks).decode()
    assert [line.split(",")[0] for line in text.splitlines()[1:]] == sent
    response = await get_csv(client)
    assert response.content == b"".join(chunks)
