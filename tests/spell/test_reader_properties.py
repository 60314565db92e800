"""Property tests of the reader and printer: print/read identity on generated values, no
exception but ReadError on arbitrary text, stable malformed-input errors, and agreement
with sexpdata (an independent reader) on the subset both read."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import sexpdata
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spellide.spell.data import (Char, Keyword, List, Map, Regex, Set, Symbol, Vector,
                                 normalize_ratio, spell_equal)
from spellide.spell.errors import ReadError
from spellide.spell.printer import pr_str
from spellide.spell.reader import read_all, read_one

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def same(a, b) -> bool:
    """Equal and of the same type all the way down (a list never matches a vector)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (List, Vector)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, Map):  # printing and reading both keep insertion order
        return len(a) == len(b) and all(same(k1, k2) and same(v1, v2) for (k1, v1), (k2, v2)
                                        in zip(a.items(), b.items()))
    if isinstance(a, Set):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, Regex):
        # a bare " in a pattern prints as \" (same regex; the reader keeps escapes verbatim)
        return a.pattern.replace('\\"', '"') == b.pattern.replace('\\"', '"')
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return spell_equal(a, b)


_NAME = st.from_regex(r"[a-zA-Z*!?<>=&$_][a-zA-Z0-9*!?<>=&$_.\-+']{0,8}", fullmatch=True)
_symbols = st.builds(
    Symbol, _NAME.filter(lambda s: s not in ("nil", "true", "false")),
    st.none() | _NAME)
_keywords = st.builds(Keyword, st.from_regex(r"[a-zA-Z0-9*!?<>=&$_.\-+]{1,8}", fullmatch=True),
                      st.none() | _NAME)
_chars = st.builds(Char, st.characters(exclude_categories=["Cs"]))
_regexes = st.sampled_from([r"\d+", 'a"b', r"\"", "[a-z]*", r"x\\y", "(a|b)+", ""]).map(Regex)
_fractions = st.builds(lambda n, d: normalize_ratio(Fraction(n, d)),
                       st.integers(-10 ** 30, 10 ** 30), st.integers(1, 10 ** 20))
_decimals = st.decimals(allow_nan=False, allow_infinity=False)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.builds(lambda n, sign: sign * (10 ** n + 7), st.integers(4290, 4400), st.sampled_from([-1, 1])),
    st.floats(allow_nan=False), _fractions, _decimals,
    st.text(), _symbols, _keywords, _chars, _regexes,
)


def _collections(children):
    return st.one_of(
        st.lists(children, max_size=5).map(List),
        st.lists(children, max_size=5).map(Vector),
        st.lists(st.tuples(children, children), max_size=4).map(
            lambda kvs: Map({k: v for k, v in kvs})),
        st.lists(children, max_size=5).map(Set),
    )


values = st.recursive(scalars, _collections, max_leaves=25)


@SETTINGS
@given(values)
def test_print_read_identity(value):
    text = pr_str(value)
    back = read_one(text)
    assert same(back, value), text
    assert pr_str(back) == text


@SETTINGS
@given(st.floats(allow_nan=False))
def test_floats_round_trip_exactly(x):
    assert same(read_one(pr_str(x)), x)


_LISP_CHARS = list('()[]{}#"\\;\'`~@^:/%,.-+0123456789abxyzMNE_ \n\t!?<>=&*|') + [
    "#{", "#(", "#_", "##", "#\"", "\\u", "\\o", "nil", "//", "/*", "*/", "\\newline", "#:a{"]
_lispy_text = st.lists(st.sampled_from(_LISP_CHARS) | st.characters(), max_size=60).map("".join)


@settings(max_examples=600, deadline=None)
@given(_lispy_text | st.text(max_size=80))
def test_arbitrary_text_reads_or_raises_read_error(text):
    try:
        forms = read_all(text)
    except ReadError as err:
        assert err.line >= 1 and err.col >= 1
        assert isinstance(err.incomplete, bool)
        if not err.incomplete:
            # malformed input stays malformed, at the same place, whatever follows
            with pytest.raises(ReadError) as again:
                read_all(text + " x)")
            assert (again.value.reason, again.value.line, again.value.col) == \
                (err.reason, err.line, err.col)
        return
    for form in forms:  # whatever was read prints and reads back
        # (inside a vector: a symbol such as */x would start a comment at the start of a line)
        (back,) = read_one(pr_str(Vector((form,))))
        assert same(back, form) or _has_nan(form)


def _has_nan(x) -> bool:
    if isinstance(x, float):
        return math.isnan(x)
    if isinstance(x, (List, Vector, Set)):
        return any(_has_nan(y) for y in x)
    if isinstance(x, Map):
        return any(_has_nan(k) or _has_nan(v) for k, v in x.items())
    return False


# --- differential: sexpdata reads nested lists of symbols, ints and plain strings ----------

_sx_symbol = st.from_regex(r"[a-z][a-z0-9\-*?!<>=]{0,6}", fullmatch=True).filter(
    lambda s: s not in ("t", "nil", "true", "false"))
_sx_atom = st.one_of(_sx_symbol.map(lambda s: ("sym", s)), st.integers(-10 ** 12, 10 ** 12),
                     st.text(st.characters(exclude_characters='"\\', exclude_categories=["Cs"]),
                             max_size=10).map(lambda s: ("str", s)))
_sx_tree = st.recursive(_sx_atom, lambda kids: st.lists(kids, max_size=5), max_leaves=30)
_ws = st.sampled_from([" ", "  ", "\n", "\t", " \n  "])


@st.composite
def _sx_text(draw):
    tree = draw(st.lists(_sx_tree, max_size=5))

    def render(t) -> str:
        if isinstance(t, list):
            return "(" + "".join((draw(_ws) if i else "") + render(x)
                                 for i, x in enumerate(t)) + ")"
        if isinstance(t, int):
            return str(t)
        kind, s = t
        return s if kind == "sym" else '"' + s + '"'

    return tree, render(tree)


def _neutral_ours(x):
    if isinstance(x, List):
        return [_neutral_ours(y) for y in x]
    if isinstance(x, Symbol):
        return ("sym", x.full)
    if isinstance(x, str):
        return ("str", x)
    return x


def _neutral_sexpdata(x):
    if isinstance(x, list):
        return [_neutral_sexpdata(y) for y in x]
    if isinstance(x, sexpdata.Symbol):
        return ("sym", str(x))
    if isinstance(x, str):
        return ("str", str(x))
    return x


@SETTINGS
@given(_sx_text())
def test_agrees_with_sexpdata(case):
    tree, text = case
    assume("\r" not in text)
    ours = _neutral_ours(read_one(text))
    theirs = _neutral_sexpdata(sexpdata.loads(text))
    assert ours == theirs == tree
