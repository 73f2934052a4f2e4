"""The contract's "Text fields" rules, in one place for every validator (names, descriptions,
comments, queries, notes): at least one visible character, no control characters (multi-line
fields keep \\n and \\t), no bidirectional overrides or isolates.

Deceptive text is what these stop: a name of only U+200B / U+3164 / U+2800 looks empty in a
list, U+202E reverses what follows it ("exe.txt" shown as "txt.exe"), ESC and newlines forge
extra lines in logs, admin pages and terminals. Pure functions of the text, no I/O: one
regex scan, then a visibility check that stops at the first visible character.
"""

from __future__ import annotations

import re
import unicodedata

# Not Unicode whitespace or Cf, yet they render as nothing: Hangul fillers, Braille blank.
BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Bidirectional embeddings/overrides (U+202A-U+202E) and isolates (U+2066-U+2069).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Categories that draw nothing by themselves: format, separators, control, unassigned.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp", "Cc", "Cn"})

NO_VISIBLE = "must contain at least one visible character"
CONTROL = "must not contain control characters"
BIDI = "must not contain bidirectional override or isolate characters"


def _visible(char: str) -> bool:
    return (
        not char.isspace()
        and char not in BLANK_LOOKING
        and unicodedata.category(char) not in _INVISIBLE_CATEGORIES
    )


# Cc is exactly U+0000-U+001F and U+007F-U+009F; with the bidi controls, one regex scan.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORBIDDEN_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def problem_of(value: str, *, multiline: bool = False) -> str | None:
    """What breaks the rules in `value` (None when it is acceptable).

    multiline: a description, comment, note or answer snippet, which may keep \\n and \\t.
    """
    found = (_FORBIDDEN_MULTILINE if multiline else _FORBIDDEN).search(value)
    if found is not None:
        return BIDI if found.group() in BIDI_CONTROLS else CONTROL
    if value.isascii():  # no control characters left: any non-space character is visible
        return None if value.strip() else NO_VISIBLE
    return None if any(map(_visible, value)) else NO_VISIBLE  # stops at the first visible
