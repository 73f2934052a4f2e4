"""Property tests (hypothesis): query normalisation, the class matrix, the rate-limit window."""

from __future__ import annotations

import math
import unicodedata
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aggregators.normalise import MAX_LENGTH, normalise_query
from service.contract import schemas
from service.contract.formats import average
from service.contract.gamedata import (
    ARCHETYPES,
    CLASS_MATRIX,
    CLASS_NAMES,
    class_for,
    classes_matching,
)
from service.http.rate_counter import seconds_until_allowed

QUICK = settings(max_examples=300, deadline=None)
WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u2003\u3000"


# ---- query normalisation ------------------------------------------------------------------


@QUICK
@given(st.text(max_size=700))
def test_normalisation_is_idempotent(query: str) -> None:
    once = normalise_query(query)
    assert normalise_query(once) == once


@QUICK
@given(st.text(max_size=3000))
def test_never_longer_than_the_column(query: str) -> None:
    assert len(normalise_query(query)) <= MAX_LENGTH


@QUICK
@given(st.text(alphabet="\ufdfa\ufb03\u00df\u3392 ", min_size=400, max_size=600))
def test_expanding_characters_are_cut_to_the_column(query: str) -> None:
    """NFKC and case folding lengthen text ("ß" -> "ss", one ligature -> 18 letters)."""
    assert len(normalise_query(query)) <= MAX_LENGTH


@QUICK
@given(st.text(max_size=600))
def test_no_outer_or_repeated_whitespace(query: str) -> None:
    normal = normalise_query(query)
    assert normal == normal.strip()
    assert "  " not in normal
    assert not any(c.isspace() and c != " " for c in normal)


def _simple_cased(c: str) -> bool:
    """Letters whose upper and lower forms are single characters that fold alike."""
    upper, lower = c.upper(), c.lower()
    return len(upper) == len(lower) == 1 and upper.casefold() == lower.casefold()


CASED_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)).filter(_simple_cased),
    max_size=120,
)


@QUICK
@given(CASED_TEXT, st.lists(st.booleans(), min_size=120, max_size=120))
def test_case_insensitive(query: str, flips: list[bool]) -> None:
    flipped = "".join(
        c.upper() if flip else c.lower() for c, flip in zip(query, flips, strict=False)
    )
    assert normalise_query(flipped) == normalise_query(query)
    assert normalise_query(query.upper()) == normalise_query(query.lower())


WORD = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
    min_size=1,
    max_size=12,
)
SPACE = st.text(alphabet=WHITESPACE, min_size=1, max_size=4)


@QUICK
@given(st.lists(WORD, min_size=1, max_size=20), st.data())
def test_whitespace_insensitive(words: list[str], data: st.DataObject) -> None:
    assume(all(w.split() == [w] for w in words))  # NFKC may turn a symbol into spaces
    spaced = data.draw(SPACE | st.just(""))
    for word in words:
        spaced += word + data.draw(SPACE)
    assert normalise_query(spaced) == normalise_query(" ".join(words))


@QUICK
@given(st.text(max_size=200))
def test_normal_form_is_nfkc(query: str) -> None:
    normal = normalise_query(query)
    assert unicodedata.normalize("NFKC", normal) == normal


def test_examples_from_the_contract() -> None:
    assert normalise_query("Tank  Build") == normalise_query("tank build") == "tank build"
    full_width = "  \uff34\uff21\uff2e\uff2b\u3000build "
    assert normalise_query(full_width) == "tank build"  # NFKC


# ---- the class matrix ---------------------------------------------------------------------


def test_all_64_pairs_have_a_class() -> None:
    pairs = {(p, s) for p in ARCHETYPES for s in ARCHETYPES}
    assert len(pairs) == 64
    assert set(CLASS_MATRIX) == pairs
    assert len(set(CLASS_MATRIX.values())) == 64  # every class name is distinct
    assert class_for("tank", "cleric") == "Paladin"
    assert class_for("mage", "mage") == "Archwizard"  # same + same is a class too


ARCHETYPE = st.sampled_from(ARCHETYPES)


def _cased(draw: st.DrawFn, key: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(key), max_size=len(key)))
    word = "".join(c.upper() if f else c for c, f in zip(key, flips, strict=True))
    return draw(st.sampled_from(["", " ", "\t"])) + word + draw(st.sampled_from(["", " "]))


@st.composite
def cased_pair(draw: st.DrawFn) -> tuple[str, str, str, str]:
    primary, secondary = draw(ARCHETYPE), draw(ARCHETYPE)
    return primary, secondary, _cased(draw, primary), _cased(draw, secondary)


@QUICK
@given(cased_pair(), st.sampled_from(["kaelar", "pyrai", "vek", "tulnar"]))
def test_any_casing_of_a_pair_validates_to_its_class(
    pair: tuple[str, str, str, str], race: str
) -> None:
    primary, secondary, sent_primary, sent_secondary = pair
    body = schemas.BuildCreate(
        name="x",
        primary_archetype=sent_primary,
        secondary_archetype=sent_secondary,
        race=race.upper(),
    )
    body.check()
    assert (body.primary_archetype, body.secondary_archetype, body.race) == (
        primary,
        secondary,
        race,
    )
    assert (
        class_for(body.primary_archetype, body.secondary_archetype)
        == CLASS_MATRIX[(primary, secondary)]
    )


@st.composite
def fragment_of_a_class(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(CLASS_NAMES))
    source = draw(st.sampled_from([name, name.replace(" ", "")]))  # "Spellhunter" too
    start = draw(st.integers(0, len(source) - 1))
    end = draw(st.integers(start + 1, len(source)))
    flips = draw(st.lists(st.booleans(), min_size=end - start, max_size=end - start))
    piece = "".join(
        c.upper() if f else c.lower() for c, f in zip(source[start:end], flips, strict=True)
    )
    return name, piece


@QUICK
@given(fragment_of_a_class())
def test_classes_matching_finds_the_class_of_any_fragment(found: tuple[str, str]) -> None:
    name, fragment = found
    matches = classes_matching(fragment)
    assert name in matches
    assert matches == sorted(matches)
    assert set(matches) <= set(CLASS_NAMES)


@QUICK
@given(st.text(max_size=12))
def test_classes_matching_only_returns_real_matches(fragment: str) -> None:
    folded = "".join(fragment.casefold().split())
    for name in classes_matching(fragment):
        assert fragment.casefold() in name.casefold() or folded in "".join(name.casefold().split())


def test_public_guide_spellings_match() -> None:
    assert classes_matching("Spellhunter") == ["Spell Hunter"]
    assert classes_matching("beastmaster") == ["Beast Master"]
    assert classes_matching("SONGCALLER") == ["Song Caller"]


# ---- the rate limiter's sliding window ----------------------------------------------------

EXPIRY = 60.0


def _weight_at(t: float, p: int, pt: float, c: int, ct: float) -> int:
    """limits' sliding-window weight t seconds from now, with nobody hitting meanwhile."""
    if ct > 0 and t >= ct - EXPIRY:  # the current window has become the previous one
        left = max(0.0, ct - t)
        return math.floor(c * left / EXPIRY)
    return math.floor(p * max(0.0, pt - t) / EXPIRY) + c


@st.composite
def refused_window(draw: st.DrawFn) -> tuple[int, int, float, int, float]:
    limit = draw(st.integers(1, 600))
    p = draw(st.integers(0, 2 * limit))
    pt = draw(st.floats(0, EXPIRY)) if p else 0.0
    c = draw(st.integers(0, 2 * limit))
    ct = draw(st.floats(EXPIRY + 0.001, 2 * EXPIRY)) if c else draw(st.sampled_from([0.0, 90.0]))
    assume(_weight_at(0.0, p, pt, c, ct) + 1 > limit)  # this request was refused
    return limit, p, pt, c, ct


@QUICK
@given(refused_window())
def test_retry_after_is_long_enough(window: tuple[int, int, float, int, float]) -> None:
    limit, p, pt, c, ct = window
    wait = seconds_until_allowed(limit, EXPIRY, p, pt, c, ct)
    assert 0.0 <= wait <= 2 * EXPIRY
    retry_after = math.floor(wait) + 1  # what the 429 says
    assert _weight_at(retry_after, p, pt, c, ct) + 1 <= limit


@given(
    st.integers(min_value=1, max_value=10**6).flatmap(
        lambda n: st.tuples(st.integers(min_value=n, max_value=5 * n), st.just(n))
    )
)
def test_average_is_half_up_to_one_decimal(sum_and_count):
    rating_sum, vote_count = sum_and_count
    expected = (Decimal(rating_sum) / Decimal(vote_count)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    assert average(rating_sum, vote_count) == float(expected)
