"""Query normalisation for grouping: NFKC, case-folded, inner whitespace collapsed, trimmed."""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 500  # the column width; NFKC/casefold can expand text (e.g. "ß" -> "ss")


def normalise_query(query: str) -> str:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", query).casefold())
    return " ".join(folded.split())[:MAX_LENGTH].rstrip()
