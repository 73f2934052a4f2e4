"""Invisible or deceptive text (issue 17, item 10), per the contract's "Text fields": 422 for
text with no visible character, control characters (multi-line fields keep \\n and \\t) and
bidirectional overrides/isolates, on every endpoint that stores text; nothing is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.contract import text
from service.ctx import App
from tests.factories import API, build_body, create_build, headers, new_session, validation

INVISIBLE = {
    "U+200B only": "\u200b",
    "U+3164 only": "\u3164",
    "U+2800 only": "\u2800",
    "format chars only": "\u200b\u2060\ufeff\u200d",
    "fillers and spaces": " \u115f \u1160\uffa0\u3000 ",
}
DECEPTIVE = {
    "U+202E override": ("Tank\u202egnp.exe", text.BIDI),
    "U+2066 isolate": ("\u2066Tank\u2069", text.BIDI),
    "ESC": ("Tank\x1b[31m", text.CONTROL),
    "DEL": ("Tank\x7f", text.CONTROL),
    "C1 NEL": ("Ta\x85nk", text.CONTROL),
    "file separator": ("Ta\x1cnk", text.CONTROL),
    "bell": ("Tank\x07", text.CONTROL),
}
SINGLE_LINE = {"newline": ("Tank\nAdmin: ok", text.CONTROL), "tab": ("Tank\tx", text.CONTROL)}
FINE = ["Ünïcode 名前 🙂", "Py'rai — Ren'kai", "a\u200db", "👩\u200d👩\u200d👧"]

FEEDBACK = {"query": "q", "response_snippet": "a", "search_mode": "quick", "rating": "up"}
SEARCH = {"query": "tank", "search_mode": "smart", "result_count": 1}


def bad_values(*, multiline: bool) -> dict[str, tuple[str, str]]:
    cases = {name: (value, text.NO_VISIBLE) for name, value in INVISIBLE.items()}
    cases |= DECEPTIVE
    if not multiline:
        cases |= SINGLE_LINE
    return cases


# (method, path, valid body, field, multi-line); {build} is a build of OWNER.
FIELDS: dict[str, tuple[str, str, dict[str, Any], str, bool]] = {
    "build name": ("POST", "/builds", build_body(), "name", False),
    "build description": ("POST", "/builds", build_body(), "description", True),
    "patched name": ("PATCH", "/builds/{build}", {}, "name", False),
    "patched description": ("PATCH", "/builds/{build}", {}, "description", True),
    "feedback query": ("POST", "/feedback", FEEDBACK, "query", False),
    "feedback comment": ("POST", "/feedback", FEEDBACK, "comment", True),
    "feedback snippet": ("POST", "/feedback", FEEDBACK, "response_snippet", True),
    "search query": ("POST", "/analytics/search", SEARCH, "query", False),
}


@pytest.mark.parametrize("where", list(FIELDS))
async def test_invisible_and_deceptive_text_is_refused(
    app: App, client: httpx.AsyncClient, sql, where: str
) -> None:
    owner = new_session()
    build = await create_build(client, owner, description="kept")
    method, path, valid, field, multiline = FIELDS[where]
    path = API + path.format(build=build["build_id"])
    answers = {}
    expected = {}
    for case, (value, problem) in bad_values(multiline=multiline).items():
        response = await client.request(
            method, path, json={**valid, field: value}, headers=headers(owner)
        )
        answers[case] = (response.status_code, response.json())
        expected[case] = (422, validation(field, problem))
    assert answers == expected
    # Nothing stored or changed: the one build above, as created.
    rows = await sql.fetch("SELECT name, description FROM builds")
    assert [tuple(r) for r in rows] == [(build["name"], "kept")]
    assert await sql.fetchval("SELECT count(*) FROM feedback") == 0
    assert app.ctx.search.depth == 0


@pytest.mark.parametrize("where", list(FIELDS))
async def test_visible_unicode_is_accepted(client: httpx.AsyncClient, where: str) -> None:
    owner = new_session()
    build = await create_build(client, owner)
    method, path, valid, field, _ = FIELDS[where]
    path = API + path.format(build=build["build_id"])
    for value in FINE:
        response = await client.request(
            method, path, json={**valid, field: value}, headers=headers(owner)
        )
        assert response.status_code in (200, 201), (value, response.text)


async def test_multiline_fields_keep_newlines_and_tabs(client: httpx.AsyncClient, sql) -> None:
    owner = new_session()
    description = "Rotation:\n\t1. Taunt\n\t2. Shield wall"
    build = await create_build(client, owner, description=description)
    assert build["description"] == description
    response = await client.post(
        f"{API}/feedback",
        json={**FEEDBACK, "comment": "wrong\n\tanswer", "response_snippet": "a\nb"},
        headers=headers(owner),
    )
    assert response.status_code == 201, response.text
    row = await sql.fetchrow("SELECT comment, response_snippet FROM feedback")
    assert tuple(row) == ("wrong\n\tanswer", "a\nb")


async def test_a_blank_comment_is_no_comment(client: httpx.AsyncClient, sql) -> None:
    response = await client.post(
        f"{API}/feedback", json={**FEEDBACK, "comment": "  "}, headers=headers(new_session())
    )
    assert response.status_code == 201, response.text
    assert await sql.fetchval("SELECT comment FROM feedback") is None


@pytest.mark.parametrize(
    ("value", "multiline", "problem"),
    [
        ("ok", False, None),
        ("", False, text.NO_VISIBLE),
        ("   ", False, text.NO_VISIBLE),
        ("a\nb", False, text.CONTROL),
        ("a\nb", True, None),
        ("\n\t", True, text.NO_VISIBLE),
        ("a\x00", True, text.CONTROL),
        ("\u200b", False, text.NO_VISIBLE),
        ("é\u202d", True, text.BIDI),
        ("é\u2028x", True, None),  # a line separator is whitespace, not a control character
    ],
)
def test_rules(value: str, multiline: bool, problem: str | None) -> None:
    assert text.problem_of(value, multiline=multiline) == problem
