"""Printer: the fixed whitespace policy, Clojure number/char/string layout, round trips,
function values, and depth without recursion."""

from __future__ import annotations

import math
import time
from decimal import Decimal
from fractions import Fraction

import pytest

from spellide.spell.data import (Builtin, Char, Keyword, List, Map, Regex, Set, SpellFn,
                                 SpellMacro, StoredRef, Symbol, kw, slist, smap,
                                 spell_equal, sym, vec)
from spellide.spell.printer import pr_str, print_float, to_str
from spellide.spell.reader import read_all, read_one


@pytest.mark.parametrize("value, text", [
    (None, "nil"), (True, "true"), (False, "false"), (0, "0"), (-42, "-42"),
    (Fraction(1, 2), "1/2"), (Fraction(-3, 4), "-3/4"), (Decimal("1.25"), "1.25M"),
    (1.0, "1.0"), (1.5, "1.5"), (-0.0, "-0.0"), (0.001, "0.001"), (1e-4, "1.0E-4"),
    (1.5e-7, "1.5E-7"), (1234567.0, "1234567.0"), (1e7, "1.0E7"), (12345678.9, "1.23456789E7"),
    (1e20, "1.0E20"), (-2.5e-10, "-2.5E-10"), (math.inf, "##Inf"), (-math.inf, "##-Inf"),
    (math.nan, "##NaN"), (1.7976931348623157e308, "1.7976931348623157E308"),
    (5e-324, "5.0E-324"),  # Java says 4.9E-324; shortest digits read back the same
    ("hi", '"hi"'), ('a"b\\c\nd\te\rf', '"a\\"b\\\\c\\nd\\te\\rf"'),
    ("\b\f\x01\x7f", '"\\b\\f\\u0001\x7f"'), ("a \\equiv b", '"a \\\\equiv b"'),
    (Keyword("a"), ":a"), (Keyword("b", "ns"), ":ns/b"), (Symbol("x"), "x"),
    (Symbol("b/c", "a"), "a/b/c"), (Char("a"), "\\a"), (Char("\n"), "\\newline"),
    (Char(" "), "\\space"), (Char("\t"), "\\tab"), (Char("\x00"), "\\u0000"),
    (Char("("), "\\("), (Regex(r"\d+"), '#"\\d+"'), (Regex('a"b'), '#"a\\"b"'),
    (StoredRef("ref-1"), '(stored "ref-1")'),
])
def test_scalars(value, text):
    assert pr_str(value) == text


def test_whitespace_policy():
    value = slist(sym("do"), vec(1, "a", None), smap(kw("a"), 1, kw("b"), vec()),
                  Set([1, 2]), slist(), slist(sym("quote"), sym("x")))
    assert pr_str(value) == '(do [1 "a" nil] {:a 1 :b []} #{1 2} () (quote x))'


def test_quote_is_not_abbreviated():
    assert pr_str(read_one("'(a 'b)")) == "(quote (a (quote b)))"


def test_first_line_vector():
    v = vec("l1", "l2")
    v.first_line = 7
    assert pr_str(v) == '(first-line 7 ["l1" "l2"])'
    assert pr_str(slist(sym("def"), sym("x"), v)) == '(def x (first-line 7 ["l1" "l2"]))'
    assert pr_str(read_one('^{:spell/first-line 3} ["a"]')) == '(first-line 3 ["a"])'


def test_function_values():
    form = read_one("(fn [x] (+ x 1))")
    assert pr_str(SpellFn(form[1], tuple(form[2:]), form=form)) == "(fn [x] (+ x 1))"
    f = SpellFn(vec(sym("a")), (slist(sym("inc"), sym("a")), sym("a")))
    assert pr_str(f) == "(fn [a] (inc a) a)"
    named = SpellFn(vec(), (1,), name=sym("f"))
    assert pr_str(named) == "(fn f [] 1)"
    multi = SpellFn(((vec(), (0,)), (vec(sym("x")), (sym("x"),))), ())
    assert pr_str(multi) == "(fn ([] 0) ([x] x))"
    assert pr_str(vec(f)) == "[(fn [a] (inc a) a)]"
    assert pr_str(Builtin("str", str)) == "str"
    assert pr_str(SpellMacro(None, "when")) == "when"
    assert read_one(pr_str(Builtin("strings/trim", str))) == Symbol("trim", "strings")


def test_unknown_objects_print_readably():
    class Thing:
        def __repr__(self) -> str:
            return 'Thing<"x">'

    text = pr_str(vec(Thing()))
    assert text == '[#object["Thing<\\"x\\">"]]'
    assert spell_equal(read_one(text), vec(slist(sym("object"), vec('Thing<"x">'))))

    class Hooked:
        def spell_pr(self) -> str:
            return "(future 3)"

    assert pr_str(slist(Hooked())) == "((future 3))"


def test_to_str():
    assert to_str("a\nb") == "a\nb"
    assert to_str(None) == ""
    assert to_str(Char("c")) == "c"
    assert to_str(Keyword("k")) == ":k"
    assert to_str(Symbol("s")) == "s"
    assert to_str(1.0) == "1.0"
    assert to_str(Decimal("1.25")) == "1.25"
    assert to_str(Fraction(1, 3)) == "1/3"
    assert to_str(math.inf) == "Infinity" and to_str(math.nan) == "NaN"
    assert to_str(Regex("a+")) == "a+"
    assert to_str(vec("a", None, Char("c"))) == '["a" nil \\c]'
    assert to_str(True) == "true"


def test_print_float_reads_back_exactly():
    for x in [0.1, 1 / 3, 2 / 3 * 1e300, 1e-310, 123456789012345.6, 9.999999e6, 1e7 - 0.5]:
        assert float(read_one(print_float(x))) == x


def test_round_trip_of_a_program():
    text = ('(quine completion (eval (do (quine prompt "P\\n\\"q\\"") (quote (!extend)) '
            '(def m {:a [1 2.5 3/4 1.25M] :b #{\\a "s"} :c nil}) (think "x" (f #"\\d" ##Inf)))))')
    form = read_one(text)
    assert pr_str(form) == text
    assert pr_str(read_one(pr_str(form))) == text


def test_deep_structures_do_not_recurse():
    deep: object = 1
    for _ in range(100000):
        deep = List((deep,))
    text = pr_str(deep)
    assert text == "(" * 100000 + "1" + ")" * 100000
    m: object = None
    for i in range(50000):
        m = Map({kw("k"): m}) if i % 2 else vec(m)
    assert pr_str(m).count("{:k ") == 25000


def test_big_int_prints():
    big = 10 ** 5000 + 7
    assert pr_str(big).endswith("0007") and len(pr_str(big)) == 5001


def test_speed_on_a_50kb_program():
    forms = read_all(" ".join(f'(def v{i} [{i} "s{i}" :k{i} {{:a {i}.5}}])' for i in range(1500)))
    program = List((Symbol("do"), *forms))
    text = pr_str(program)
    assert len(text) > 50000
    t = time.perf_counter()
    for _ in range(5):
        pr_str(program)
    assert (time.perf_counter() - t) / 5 < 0.25
