"""CSV export of feedback: a server-side cursor read in chunks, each chunk encoded and handed
to the caller, so memory stays flat for any number of rows.

RFC 4180: comma separated, fields with a comma, quote or line break quoted (quotes doubled),
CRLF line ends, a header row, UTF-8. A text cell starting with = + - @ or a tab (or CR) is
prefixed with ' so a spreadsheet shows it as text instead of running it as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

from tortoise import connections

from service.contract.formats import iso

HEADER = (
    "id",
    "received_at",
    "mode",
    "rating",
    "query",
    "snippet",
    "comment",
    "status",
    "note",
    "reviewed_by",
    "reviewed_at",
)
CHUNK_ROWS = 1000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_EXPORT_SQL = """
SELECT feedback_id, received_at, search_mode, rating, query, response_snippet, comment,
       status, note, reviewed_by, reviewed_at
FROM feedback
WHERE received_at >= coalesce($1::timestamptz, '-infinity')
  AND received_at < coalesce($2::timestamptz, 'infinity')
ORDER BY received_at, feedback_id
"""


def cell(value: Any) -> str:
    """One CSV cell's text: timestamps in the contract's format, formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def encode_rows(rows: list[Any], *, header: bool = False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    if header:
        writer.writerow(HEADER)
    writer.writerows([cell(v) for v in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


async def export_csv(start: datetime | None, stop: datetime | None) -> AsyncGenerator[bytes, None]:
    """The CSV in chunks of CHUNK_ROWS rows (the first one starts with the header row)."""
    db: Any = connections.get("default")
    async with db.acquire_connection() as conn, conn.transaction(readonly=True):
        cursor = await conn.cursor(_EXPORT_SQL, start, stop)
        yield encode_rows([], header=True)
        while rows := await cursor.fetch(CHUNK_ROWS):
            yield encode_rows(rows)
