"""Program assembly: spell-language.md 2.2/2.3 and conformance cases 2, 3, 4 and 7."""

from __future__ import annotations

import pytest

from spellide.spell.assembly import (assemble, balance_parens, paren_balance,
                                     sanitize_comment_markers, strip_code_fences,
                                     strip_prefix_echo, strip_trailing_parens)
from spellide.spell.data import List, Symbol, slist, spell_equal, sym
from spellide.spell.errors import ReadError, SpellError
from spellide.spell.reader import read_all


@pytest.mark.parametrize("text, n", [
    ("(+ 1", 1), ("((+ 1", 2), ("(+ 1))", -1), ("(+ [1 2]", 1), ('(str "hello (world)")', 0),
    ('(str "esc \\" (")', 0), ("(a ; comment (\n b", 1), ("(str \\( \\))", 0),
    ('(def x "unterminated (', 1), ("(do\n  // note (\n  1", 1), ("", 0),
])
def test_paren_balance(text, n):
    assert paren_balance(text) == n


def test_case4_balance_appends_one_paren():
    assert balance_parens('(def x "text ( paren"') == '(def x "text ( paren")'


def test_balance_leaves_negative_and_brackets_alone():
    assert balance_parens("(a))") == "(a))"
    assert balance_parens("(a [b") == "(a [b)"


def test_case2_prefix_plus_suffix():
    text, form = assemble("(do ", "(+ 40 2)")
    assert text == "(do (+ 40 2))"
    assert spell_equal(form, slist(sym("do"), slist(sym("+"), 40, 2)))


def test_case3_one_extra_closer_is_forgiven_two_are_not():
    text, form = assemble("(do ", "42))")
    assert spell_equal(form, slist(sym("do"), 42))
    assert text == "(do 42)"
    _, form = assemble("(do ", "42)) \n ")
    assert spell_equal(form, slist(sym("do"), 42))
    with pytest.raises(ReadError) as info:
        assemble("(do ", "42)))")
    assert info.value.reason == "Unmatched delimiter: )"
    assert not info.value.incomplete


def test_stray_closer_not_at_end_is_an_error():
    with pytest.raises(ReadError) as info:
        assemble("(do ", "42)) (x)")
    assert "Unmatched delimiter" in info.value.reason
    with pytest.raises(ReadError):
        assemble("(do ", "[1 2)")  # mismatched closer at the end is not "stray"


def test_case7_multiple_top_level_forms():
    with pytest.raises(SpellError) as info:
        assemble("", "(def x 1) (+ x 1)")
    err = info.value
    assert err.kind == "multiple-top-level-forms"
    assert err.message.startswith("Expected exactly one top-level form, got 2")
    assert (err.span.line, err.span.col) == (1, 11)
    text, form = assemble("", "(def x 1) (+ x 1)", allow_multiple=True)
    assert text == "(def x 1) (+ x 1)"
    assert type(form) is List and form[0] == Symbol("do")
    assert spell_equal(form, slist(sym("do"), slist(sym("def"), sym("x"), 1),
                                   slist(sym("+"), sym("x"), 1)))
    assert [text[s.start:s.end] for s in form.spans[1:]] == ["(def x 1)", "(+ x 1)"]


def test_prose_after_program_is_multiple_forms():
    with pytest.raises(SpellError) as info:
        assemble("(do ", "42) Now I'm done")
    assert info.value.kind == "multiple-top-level-forms"


def test_read_errors_point_into_raw_text():
    with pytest.raises(ReadError) as info:
        assemble("(quine completion (eval (do\n  ", "\\invalidchar)")
    err = info.value
    assert err.reason == "Unsupported character: \\invalidchar"
    assert (err.line, err.col) == (2, 3)


def test_unclosed_vector_is_not_repaired():
    with pytest.raises(ReadError) as info:
        assemble("(do ", "[1 2")
    assert info.value.reason == "Unmatched delimiter: )" and not info.value.incomplete


def test_no_form_is_incomplete():
    with pytest.raises(ReadError) as info:
        assemble("", "  ; nothing\n")
    assert info.value.incomplete


def test_clean_strips_fences_and_echo():
    prefix = "(do "
    text, form = assemble(prefix, "```clojure\n(do (+ 1 2))\n```", clean=True)
    assert spell_equal(form, slist(sym("do"), slist(sym("+"), 1, 2)))
    # not cleaning keeps the fence, which is not Spell
    with pytest.raises(SpellError):
        assemble(prefix, "```clojure\n(+ 1 2))\n```")


def test_strip_helpers():
    assert strip_prefix_echo("(do ", "(do 42)") == "42)"
    assert strip_code_fences("```\n42\n```") .strip() == "42"
    assert strip_trailing_parens(2, "(a (b))  \n") == "(a (b"
    with pytest.raises(SpellError, match="not enough closing parens"):
        strip_trailing_parens(3, "))")
    with pytest.raises(SpellError, match="expected '\\)'"):
        strip_trailing_parens(2, "(a b)")


def test_sanitize_comment_markers():
    text = '  // a\n"x\n// in string" /* mid\n*/ end\n(f) // mid-line stays'
    out = sanitize_comment_markers(text)
    assert out == '  ;/ a\n"x\n// in string" /* mid\n;/ end\n(f) // mid-line stays'
    assert len(out) == len(text)
    # what the reader does natively agrees with the rewrite for line-start markers
    assert read_all("// a\n(f)") == read_all(sanitize_comment_markers("// a\n(f)"))
